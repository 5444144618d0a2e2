"""`securemsg serve --processes 2` on one SQLite file, with Redis to carry the realtime events (issue 18: "SQLite
with several processes stays correct"), and SECUREMSG_METRICS_LISTEN with several processes: one address,
served by the supervising parent, every sample labelled with the process it came from."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import need, redis_url
from tests.faults.procs import (
    Http,
    Server,
    create_practice,
    free_port,
    make_people,
    open_conversation,
    server_env,
)
from tests.gateway.test_metrics import FAMILIES
from tests.scale.test_processes import answered_by, cli_fails

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class Two:
    def __init__(self, server: Server, env: dict[str, str], metrics_url: str) -> None:
        self.server = server
        self.env = env
        self.metrics_url = metrics_url


def cmdline(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


async def start_two(tmp_path: Path, **extra: str) -> Two:
    env = server_env(
        f"sqlite://{tmp_path / 'securemsg.sqlite3'}",
        tmp_path / "var",
        SECUREMSG_REDIS_URL=need("redis", redis_url()),
        SECUREMSG_SEND_RATE_PER_MIN="1000000",
        **extra,
    )
    server = Server(env, tmp_path / "logs", "--processes", "2")
    await server.start()
    deadline = time.monotonic() + 30
    while len(set(await answered_by(server, 10))) < 2:
        if time.monotonic() > deadline:
            await server.stop()
            raise AssertionError(f"the second process did not answer:\n{server.log_text()}")
        await asyncio.sleep(0.1)
    listen = extra.get("SECUREMSG_METRICS_LISTEN")
    return Two(server, env, f"http://{listen}/metrics" if listen else "")


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[Two]:
    started = await start_two(tmp_path)
    yield started
    await started.server.stop()


@pytest.fixture
async def two_metered(tmp_path: Path) -> AsyncIterator[Two]:
    # A TMPDIR too long to hold a Unix socket's path (a deep home directory): the sockets go elsewhere.
    long_tmp = tmp_path / ("t" * 100)
    long_tmp.mkdir()
    started = await start_two(
        tmp_path, SECUREMSG_METRICS_LISTEN=f"127.0.0.1:{free_port()}", TMPDIR=str(long_tmp)
    )
    yield started
    await started.server.stop()


async def test_concurrent_sends_through_both_processes_on_one_sqlite_file_are_each_stored_once(
    two: Two,
) -> None:
    """Two senders at once, each send on a new connection so both processes take sends and their group
    commits take turns on the one file: every send answers 201 (no "database is locked" 503), every message
    is stored once, the unread counts add up, and the socket on one process hears every message."""
    server = two.server
    made = await create_practice(two.env, "procs owner password")
    async with aiohttp.ClientSession() as session:
        http = Http(session, server)
        people = await make_people(http, made, ["ann", "ben", "cy"], [])
        tokens = people.tokens
        to_ben = await open_conversation(http, tokens["ann"], people.ids["ben"])
        cy_to_ben = await open_conversation(http, tokens["cy"], people.ids["ben"])
        ws = await session.ws_connect(
            server.url + "/api/v1/ws", headers={"Authorization": f"Bearer {tokens['ben']}"}
        )
        assert (await ws.receive_json(timeout=10))["type"] == "unread"

        senders: Counter[int] = Counter()
        statuses: Counter[int] = Counter()

        async def send(fresh: aiohttp.ClientSession, conv: int, who: str, body: str) -> None:
            async with fresh.post(
                f"{server.url}/api/v1/conversations/{conv}/messages",
                json={"body": body},
                headers={"Authorization": f"Bearer {tokens[who]}"},
            ) as resp:
                statuses[resp.status] += 1
                senders[int(resp.headers["X-Securemsg-Pid"])] += 1

        sent = {to_ben: [f"ann {i}" for i in range(30)], cy_to_ben: [f"cy {i}" for i in range(30)]}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
            for i in range(0, 30, 6):  # six at a time from each sender: twelve sends in flight
                await asyncio.gather(
                    *(send(fresh, to_ben, "ann", body) for body in sent[to_ben][i : i + 6]),
                    *(send(fresh, cy_to_ben, "cy", body) for body in sent[cy_to_ben][i : i + 6]),
                )
        assert statuses == {201: 60}, statuses
        assert len(senders) == 2, senders  # both processes wrote to the one file
        # The dispatcher runs in one of them only: the other is started with --no-worker.
        argvs = [cmdline(pid) for pid in senders]
        assert sorted(b"--no-worker" in argv for argv in argvs) == [False, True], argvs

        heard: Counter[str] = Counter()
        while sum(heard.values()) < 60:
            event = await ws.receive_json(timeout=10)
            if event["type"] == "message.created":
                heard[event["message"]["body"]] += 1
        assert heard == Counter(sent[to_ben] + sent[cy_to_ben])  # each once, whichever process stored it
        await ws.close()

        for conv, bodies in sent.items():
            page = await http.ok("GET", f"/conversations/{conv}/messages?limit=100", token=tokens["ben"])
            stored = [m["body"] for m in page["items"]]
            assert sorted(stored) == sorted(bodies)  # every one, once
            assert len({m["id"] for m in page["items"]}) == 30
        listing = await http.ok("GET", "/conversations", token=tokens["ben"])
        unread = {c["id"]: c["unread_count"] for c in listing["items"]}
        assert unread == {to_ben: 30, cy_to_ben: 30}
    log = server.log_text()
    assert "exited with" not in log  # no process died on the way
    # Nor did a request, the dispatcher or the audit sealer meet "database is locked" on the way.
    assert [line for line in log.splitlines() if "failed" in line or "unavailable" in line] == []


async def test_one_metrics_address_serves_every_process_each_labelled_with_its_index(
    two_metered: Two,
) -> None:
    """Every child used to bind SECUREMSG_METRICS_LISTEN itself: the first won, every other exited with
    status 2 and was started again, for good (the dispatcher's child among them). Now the parent serves the
    address and reads each child over a private socket."""
    async with aiohttp.ClientSession() as http:

        async def scrape() -> dict[str, list[tuple[str, dict[str, str], float]]]:
            async with http.get(two_metered.metrics_url) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await resp.text()
            return {
                f.name: [(s.name, s.labels, s.value) for s in f.samples]
                for f in text_string_to_metric_families(text)
            }

        def healthz(page: dict[str, list[tuple[str, dict[str, str], float]]]) -> dict[str, float]:
            return {
                labels["process"]: value
                for name, labels, value in page["securemsg_http_requests"]
                if name.endswith("_total") and labels["route"] == "/healthz" and labels["status"] == "200"
            }

        before = await scrape()
        pids = await answered_by(two_metered.server, 30)
        after = await scrape()
    for family in FAMILIES:
        assert {labels["process"] for _, labels, _ in after[family]} == {"0", "1"}, family
    # Every request is counted once, by the process that answered it.
    counted = {p: n - healthz(before).get(p, 0) for p, n in healthz(after).items()}
    assert sorted(counted.values()) == sorted(Counter(pids).values()), (counted, Counter(pids))
    assert sum(counted.values()) == 30
    # The labels are still only what the code names, plus the child's index.
    for samples in after.values():
        for _, labels, _ in samples:
            assert labels.get("process") in ("0", "1")
    assert "exited with" not in two_metered.server.log_text()


async def test_a_taken_metrics_address_stops_several_processes_in_one_line(two_metered: Two) -> None:
    port = two_metered.metrics_url.split(":")[2].split("/")[0]
    out = await cli_fails(two_metered.env, "serve", "--port", str(free_port()), "--processes", "2")
    assert out[-1].startswith(f"securemsg: SECUREMSG_METRICS_LISTEN 127.0.0.1:{port} cannot be listened on")
    assert not [line for line in out if "gateway process" in line]  # no child was started
