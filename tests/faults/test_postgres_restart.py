"""PostgreSQL going away under load, on a private cluster (never the machine's shared server).

- Restarted (stopped like a crash, or with a fast clean stop, and started again): while it is down every
  request answers at once with 503 and Retry-After (no hang, no crash, no 500), `/readyz` says 503 and
  `/healthz` 200; when it is back the same process serves again without a restart, and each acknowledged
  message is stored exactly once.
- Frozen (every PostgreSQL process stopped with SIGSTOP: connections stay open and nothing answers, like a
  hung host): requests still answer 503 within the database timeout instead of hanging, and the process
  recovers once the database answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.faults.pgcluster import PrivateCluster, freeze, thaw
from tests.faults.procs import (
    Http,
    People,
    Reply,
    Server,
    create_practice,
    make_people,
    open_conversation,
    server_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DOWN_S = 4.0
SENDERS = ("clinician", "colleague", "third")


@pytest.fixture
async def cluster() -> AsyncIterator[PrivateCluster]:
    pg = PrivateCluster()
    try:
        await pg.init()
        yield pg
    finally:
        await pg.destroy()


class Load:
    """Senders that write messages with client_msg_ids and retry a 503 until acknowledged, keeping every
    answer with when it came; `down()` and `back()` mark when the database went and came back."""

    def __init__(self, http: Http, people: People, convs: dict[str, int]) -> None:
        self.http = http
        self.people = people
        self.convs = convs
        self.replies: list[Reply] = []
        self.down_at = self.back_at = float("inf")
        self.acked: dict[str, int] = {}
        self.first_ok_back: float | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _sender(self, who: str) -> None:
        n = 0
        while not self._stop.is_set():
            cmid = f"{who}-{n}"
            while True:
                got = await self.http.reply(
                    "POST",
                    f"/conversations/{self.convs[who]}/messages",
                    {"body": f"message {cmid}", "client_msg_id": cmid},
                    self.people.tokens[who],
                    within_s=60,
                )
                self.replies.append(got)
                if got.status in (200, 201):
                    self.acked[cmid] = int(got.data["message"]["id"])
                    if got.ended_at - got.took_s > self.back_at and self.first_ok_back is None:
                        self.first_ok_back = got.ended_at - self.back_at
                    break
                await asyncio.sleep(0.5)
            n += 1
            await asyncio.sleep(0.25)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sender(who)) for who in self.convs]

    def down(self) -> None:
        self.down_at = time.monotonic()

    def back(self) -> None:
        self.back_at = time.monotonic()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), timeout=90)


async def setup(http: Http, made: dict) -> tuple[People, dict[str, int]]:
    people = await make_people(http, made, list(SENDERS), ["ann"])
    tok, ids = people.tokens, people.ids
    convs = {
        "clinician": await open_conversation(http, tok["clinician"], ids["ann"]),
        "colleague": await open_conversation(http, tok["colleague"], ids["clinician"]),
        "third": await open_conversation(http, tok["third"], ids["colleague"]),
    }
    return people, convs


def between(replies: list[Reply], start: float, end: float) -> list[Reply]:
    """The answers to requests made after `start` and answered before `end` (time.monotonic())."""
    return [r for r in replies if r.ended_at - r.took_s >= start and r.ended_at <= end]


async def probe(http: Http, path: str, replies: list[Reply]) -> None:
    while True:
        replies.append(await http.reply("GET", path, within_s=60))
        await asyncio.sleep(0.2)


async def assert_each_acknowledged_message_stored_once(http: Http, people: People, load: Load) -> None:
    stored: Counter[str] = Counter()
    for who, conv in load.convs.items():
        stored += await stored_client_msg_ids(http, people.tokens[who], conv)
    assert set(load.acked) <= set(stored)
    assert all(n == 1 for n in stored.values()), [k for k, n in stored.items() if n > 1]


async def stored_client_msg_ids(http: Http, token: str, conversation_id: int) -> Counter[str]:
    found: Counter[str] = Counter()
    before: int | None = None
    while True:
        query = f"?limit=200&before={before}" if before else "?limit=200"
        got = await http.reply("GET", f"/conversations/{conversation_id}/messages{query}", token=token)
        assert got.status == 200, got
        found.update(m["client_msg_id"] for m in got.data["items"])
        before = got.data["next_before"]
        if not before:
            return found


# `immediate` is a crash (connections cut, recovery on start); `fast` a clean restart, which closes every
# connection while statements are on the wire (asyncpg's "cannot switch to state …": 503, not 500).
@pytest.mark.parametrize("mode", ["immediate", "fast"])
async def test_postgres_restart_gives_503_then_recovers_without_a_restart(
    cluster: PrivateCluster, tmp_path: Path, mode: str
) -> None:
    server = Server(server_env(cluster.url, tmp_path / "var"), tmp_path / "logs")
    made = await create_practice(server.env, "owner password 123")
    await server.start()
    pid = server.pid
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(session, server)
            people, convs = await setup(http, made)
            load = Load(http, people, convs)
            ready: list[Reply] = []
            load.start()
            probing = asyncio.create_task(probe(http, "/readyz", ready))
            await asyncio.sleep(1.5)

            up_until = time.monotonic()  # from here PostgreSQL is on its way down
            await cluster.stop(mode)
            load.down()
            await asyncio.sleep(DOWN_S)
            healthz = await http.reply("GET", "/healthz")
            # A link opened while the database is away: 503 too, and its token is not in the log line.
            link_token = "Lk" + "x7Q" * 12
            opened = await http.reply("GET", f"/portal/m/{link_token}")
            # "Back" from the moment PostgreSQL is started: it may answer before pg_ctl returns.
            load.back()
            await cluster.start()
            await asyncio.sleep(3)
            await load.stop()
            probing.cancel()

            up = between(load.replies, 0, up_until)
            assert [r.status for r in up].count(201) >= 3
            down = between(load.replies, load.down_at, load.back_at)
            assert len(down) >= 6, "the senders kept writing while the database was down"
            assert {r.status for r in down} == {503}, Counter(r.status for r in down)
            assert {r.data["error"]["code"] for r in down} == {"unavailable"}
            assert all(r.headers.get("Retry-After", "").isdigit() for r in down)
            assert max(r.took_s for r in down) < 3, "a request waited on the dead database"
            ready_down = between(ready, load.down_at, load.back_at)
            assert ready_down and {r.status for r in ready_down} == {503}
            assert {r.status for r in between(ready, 0, up_until)} == {200}
            assert healthz.status == 200
            assert opened.status == 503
            assert "/portal/m/{token}" in server.log_text() and link_token not in server.log_text()
            assert load.first_ok_back is not None and load.first_ok_back < 6, load.first_ok_back
            assert (await http.reply("GET", "/readyz")).status == 200
            assert server.alive and server.pid == pid  # the same process, never restarted
            await assert_each_acknowledged_message_stored_once(http, people, load)
    finally:
        await server.stop()


async def test_a_database_that_stops_answering_gives_503_within_the_timeout(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    timeout_s = 2
    server = Server(
        server_env(cluster.url, tmp_path / "var", SECUREMSG_DATABASE_TIMEOUT_S=str(timeout_s)),
        tmp_path / "logs",
    )
    made = await create_practice(server.env, "owner password 123")
    await server.start()
    pid = server.pid
    frozen: list[int] = []
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(session, server)
            people, convs = await setup(http, made)
            load = Load(http, people, convs)
            ready: list[Reply] = []
            load.start()
            probing = asyncio.create_task(probe(http, "/readyz", ready))
            await asyncio.sleep(1.5)

            frozen = freeze(cluster)
            load.down()
            await asyncio.sleep(3 * timeout_s + 2)
            healthz = await http.reply("GET", "/healthz")
            thaw(frozen)
            frozen = []
            load.back()
            await asyncio.sleep(4)
            await load.stop()
            probing.cancel()

            down = between(load.replies, load.down_at, load.back_at)
            assert len(down) >= 3
            assert {r.status for r in down} == {503}, Counter(r.status for r in down)
            # Made while the database was frozen: answered within the timeout, or twice the timeout for one
            # that first waited for a pooled connection, then for its statement (none waited for the thaw).
            slowest = max(
                r.took_s
                for r in load.replies
                if r.ended_at - r.took_s >= load.down_at and r.ended_at - r.took_s < load.back_at
            )
            assert slowest < 2 * timeout_s + 1, slowest
            assert all(r.headers.get("Retry-After", "").isdigit() for r in down)
            ready_down = between(ready, load.down_at, load.back_at)
            assert ready_down and {r.status for r in ready_down} == {503}
            assert healthz.status == 200 and healthz.took_s < 1
            assert load.first_ok_back is not None and load.first_ok_back < 3 * timeout_s, load.first_ok_back
            assert server.alive and server.pid == pid
            await assert_each_acknowledged_message_stored_once(http, people, load)
    finally:
        thaw(frozen)
        await server.stop()
