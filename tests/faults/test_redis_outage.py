"""A send path that never waits on Redis (issue #14), on a redis-server of the test's own (never the shared
one): frozen with SIGSTOP (connections open, nothing answers, like a hung host), sends still answer in
their usual time, the send limit still holds (counted in the process, never no limit), and `/readyz` stays
200, saying Redis is degraded; with Redis killed too. Every Redis call gives up after
SECUREMSG_REDIS_TIMEOUT_S, and realtime events are published after the answer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import statistics
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import need
from tests.faults.procs import Http, Server, create_practice, free_port, make_people, server_env

pytestmark = [pytest.mark.slow]

SEND_RATE = 20


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = need("redis-server binary", shutil.which("redis-server"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.thaw()
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


async def test_r12_sends_do_not_wait_on_a_frozen_redis_and_readyz_stays_200(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = server_env(
        f"sqlite://{tmp_path / 'db.sqlite3'}",
        tmp_path / "var",
        SECUREMSG_REDIS_URL=redis_server.url,
        SECUREMSG_SEND_RATE_PER_MIN=str(SEND_RATE),
    )
    made = await create_practice(env, "owner password 123")
    server = Server(env, tmp_path / "logs")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(session, server)
            people = await make_people(http, made, ["clinician", "colleague", "third"], [])
            conv = await http.ok(
                "POST",
                "/conversations",
                {"participant_ids": [people.ids["colleague"]]},
                people.tokens["clinician"],
            )
            path = f"/conversations/{conv['id']}/messages"

            async def send(who: str, n: int) -> tuple[int, float]:
                got = await http.reply("POST", path, {"body": f"note {n}"}, people.tokens[who], within_s=30)
                return got.status, got.took_s

            usual = [await send("colleague", n) for n in range(5)]
            assert {s for s, _ in usual} == {201}
            ready = await http.reply("GET", "/readyz")
            assert ready.status == 200 and ready.data == {
                "status": "ok",
                "checks": {"database": True, "redis": True},
            }

            redis_server.freeze()
            frozen = [await send("colleague", n) for n in range(5, 15)]
            assert {s for s, _ in frozen} == {201}, frozen
            # Only a request that meets Redis as it stops answering waits, and at most twice the timeout
            # (0.5 s); the ones after it do not wait on Redis at all. (The bound leaves room for a loaded
            # machine; without the timeouts a send waited 30 s.)
            assert max(t for _, t in frozen) < 5, frozen
            assert statistics.median(t for _, t in frozen) < max(0.3, 3 * max(t for _, t in usual)), frozen
            ready = await http.reply("GET", "/readyz")
            assert ready.status == 200 and ready.took_s < 5
            assert ready.data == {"status": "degraded", "checks": {"database": True, "redis": False}}

            # The send limit still holds without Redis: counted in this process, never no limit. (Two
            # windows' worth at most, should a minute start during the loop.)
            statuses = [(await send("third", n))[0] for n in range(2 * SEND_RATE + 2)]
            assert 429 in statuses and statuses.index(429) <= 2 * SEND_RATE, statuses

            redis_server.thaw()
            await redis_server.kill()  # and gone altogether: the same
            status, took = await send("colleague", 99)
            assert status == 201 and took < 5
            ready = await http.reply("GET", "/readyz")
            assert ready.status == 200 and ready.data["status"] == "degraded"
            assert server.alive
    finally:
        redis_server.thaw()
        await server.stop()
    log = server.log_text()
    assert "rate limiter: Redis does not answer" in log
    assert "Traceback" not in log
