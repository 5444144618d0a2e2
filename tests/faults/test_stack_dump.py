"""`kill -USR1` on a serving process writes every thread's stack to its log and changes nothing else: what an
operator (or a test whose server never became ready) needs to see where a stuck process stands."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from tests.faults.procs import Server, server_env


async def test_sigusr1_writes_the_stacks_and_the_server_keeps_serving(tmp_path: Path) -> None:
    server = Server(server_env(f"sqlite://{tmp_path / 'db.sqlite3'}", tmp_path / "var"), tmp_path / "logs")
    await server.start()
    try:
        assert server.proc is not None
        assert "Current thread" not in server.log_text()
        os.kill(server.proc.pid, signal.SIGUSR1)
        deadline = asyncio.get_running_loop().time() + 10
        while "Current thread" not in server.log_text():
            assert asyncio.get_running_loop().time() < deadline, server.log_text()
            await asyncio.sleep(0.05)
        log = server.log_text()
        assert 'File "' in log and "asyncio" in log  # the event loop's thread, where it waits
        async with aiohttp.ClientSession() as http, http.get(server.url + "/healthz") as resp:
            assert resp.status == 200  # still serving
        assert server.proc.returncode is None
    finally:
        await server.stop()
