"""`securemsg serve --processes N` for real: one supervising parent, N gateway processes on one port, on
PostgreSQL without Redis (the events cross the processes through LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import _pg_exec, _with_db, need, postgres_url
from tests.faults.procs import ROOT, Http, Server, create_practice, make_people, server_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def pg_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database and no Redis: nothing but PostgreSQL joins the processes."""
    base = need("postgres", postgres_url())
    name = f"securemsg_procs_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_exec(base, f'CREATE DATABASE "{name}"'))
    yield server_env(_with_db(base, name), tmp_path / "var")
    asyncio.run(_pg_exec(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def two(pg_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Server]:
    server = Server(pg_env, tmp_path / "logs", "--processes", "2")
    await server.start()  # the first process answers /readyz
    deadline = time.monotonic() + 30
    while len(set(await answered_by(server, 10))) < 2:  # and then the second
        if time.monotonic() > deadline:
            await server.stop()  # or the supervisor outlives the run, restarting its children for good
            raise AssertionError(f"the second process did not answer:\n{server.log_text()}")
        await asyncio.sleep(0.1)
    yield server
    await server.stop()


async def answered_by(server: Server, n: int = 40) -> list[int]:
    """The pid of the process that answered each of n /healthz requests, each on a new connection."""
    pids = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(n):
            async with http.get(server.url + "/healthz") as resp:
                assert resp.status == 200
                pids.append(int(resp.headers["X-Securemsg-Pid"]))
    return pids


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_both_processes_answer_and_a_message_sent_through_either_reaches_the_socket(
    two: Server, pg_env: dict[str, str]
) -> None:
    pids = set(await answered_by(two))
    assert len(pids) == 2, pids  # the kernel spread the connections over both
    assert two.pid not in pids  # the parent only supervises

    made = await create_practice(pg_env, "procs owner password")
    async with aiohttp.ClientSession() as session:
        people = await make_people(Http(session, two), made, ["ann", "ben"], [])
        ws = await session.ws_connect(
            two.url + "/api/v1/ws", headers={"Authorization": f"Bearer {people.tokens['ben']}"}
        )
        assert (await ws.receive_json(timeout=10))["type"] == "unread"
        conv = (
            await Http(session, two).ok("POST", "/conversations", {"participant_ids": [people.ids["ben"]]},
                                        people.tokens["ann"])
        )["id"]  # fmt: skip
        # Each send on a new connection, so they land on both processes; the socket is on one of them.
        senders: set[int] = set()
        sent = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
            for i in range(24):
                body = f"message {i} through whichever process"
                async with fresh.post(
                    f"{two.url}/api/v1/conversations/{conv}/messages",
                    json={"body": body},
                    headers={"Authorization": f"Bearer {people.tokens['ann']}"},
                ) as resp:
                    assert resp.status == 201, await resp.text()
                    senders.add(int(resp.headers["X-Securemsg-Pid"]))
                sent.append(body)
        assert senders == pids, (senders, pids)
        got = []
        while len(got) < len(sent):
            event = await ws.receive_json(timeout=10)
            if event["type"] == "message.created":
                got.append(event["message"]["body"])
        assert got == sent  # every one, in the order sent, whichever process took it
        await ws.close()


async def test_r27_a_sign_out_through_one_process_closes_the_socket_on_the_other(
    two: Server, pg_env: dict[str, str]
) -> None:
    made = await create_practice(pg_env, "procs owner password")
    async with aiohttp.ClientSession() as session:
        people = await make_people(Http(session, two), made, ["ann"], [])
        token = people.tokens["ann"]
        ws = await session.ws_connect(two.url + "/api/v1/ws", headers={"Authorization": f"Bearer {token}"})
        assert (await ws.receive_json(timeout=10))["type"] == "unread"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
            started = time.monotonic()
            async with fresh.post(
                two.url + "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 200
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 4401
        assert time.monotonic() - started < 2.0


async def test_a_killed_process_is_started_again_and_the_port_keeps_answering(two: Server) -> None:
    victim, survivor = sorted(set(await answered_by(two)))[:2]
    os.kill(victim, signal.SIGKILL)
    # At once and while it restarts, every request is answered (by the survivor, then by both).
    deadline = time.monotonic() + 30
    while True:
        pids = set(await answered_by(two, 10))
        assert victim not in pids
        if len(pids) == 2:
            break
        assert time.monotonic() < deadline, f"no new process within 30 s:\n{two.log_text()}"
        await asyncio.sleep(0.1)
    assert survivor in pids
    assert two.alive
    assert f"(pid {victim}) exited with signal SIGKILL; starting it again" in two.log_text()


async def test_sigterm_to_the_parent_stops_every_process(two: Server) -> None:
    children = set(await answered_by(two))
    assert two.proc is not None
    two.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(two.proc.wait(), timeout=30) == 0
    assert all(gone(pid) for pid in children)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(two.url + "/healthz")
    assert "all gateway processes stopped" in two.log_text()


async def test_killing_the_parent_takes_its_processes_with_it(two: Server) -> None:
    children = set(await answered_by(two))
    await two.kill9()
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in children):
        assert time.monotonic() < deadline, "a gateway process outlived its supervisor"
        await asyncio.sleep(0.1)


async def test_sqlite_without_redis_refuses_two_processes_in_one_line(tmp_path: Path) -> None:
    env = server_env(f"sqlite://{tmp_path / 'db.sqlite3'}", tmp_path / "var")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--port", "0", "--processes", "2", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2
    assert out == b""
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("securemsg: --processes 2 needs SECUREMSG_REDIS_URL or a PostgreSQL database")


@pytest.mark.parametrize("bad", ["0", "-1", "two", "257"])
async def test_a_bad_process_count_is_refused_in_one_line(tmp_path: Path, bad: str) -> None:
    env = server_env(f"sqlite://{tmp_path / 'db.sqlite3'}", tmp_path / "var")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--processes", bad, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2
    assert err.decode().splitlines() == [
        f"securemsg: argument --processes: must be a whole number from 1 to 256, not {bad!r}"
    ]


async def test_a_taken_port_is_refused_in_one_line(pg_env: dict[str, str], two: Server) -> None:
    out = await cli_fails(pg_env, "serve", "--port", str(two.port), "--processes", "2")
    assert out == [f"securemsg: cannot listen on 127.0.0.1:{two.port} (Address already in use)"]


async def cli_fails(env: dict[str, str], *args: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2, err.decode()
    return err.decode().splitlines()
