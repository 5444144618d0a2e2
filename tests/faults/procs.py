"""Real `securemsg` processes for the fault tests: start `serve` on a fixed port, kill it with SIGKILL,
start it again on the same port, read its memory from /proc.

Each process writes its stdout and stderr to a file under the test's tmp_path, so a failing test can show
what the server said, and the log tests can read every line it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config import new_data_key_line

ROOT = Path(__file__).resolve().parents[2]
READY_WITHIN_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(db_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a securemsg process: nothing SECUREMSG_* leaks in from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREMSG_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SECUREMSG_DATABASE_URL": db_url,
            "SECUREMSG_VAR_DIR": str(var_dir),
            "SECUREMSG_SECRET_KEY": "fault-test-secret-0123456789abcdef",
            "SECUREMSG_DATA_KEY": new_data_key_line("k1"),
            "SECUREMSG_TESTING": "1",
        }
    )
    env.update(extra)
    return env


async def cli(env: Mapping[str, str], *args: str, within_s: float = 60) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, env=dict(env), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=within_s)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def create_practice(env: Mapping[str, str], password: str) -> dict[str, Any]:
    made = json.loads(
        await cli(env, "create-practice", "--name", "Faults Clinic", "--owner-name", "Olive Owner",
                  "--owner-email", "owner@faults.example", "--owner-password", password)
    )  # fmt: skip
    assert isinstance(made, dict)
    return made


class Server:
    """One `securemsg serve` process on a port chosen once, so a restart comes back at the same address."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, *args: str, port: int | None = None) -> None:
        self.env = dict(env)
        self.args = args
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_files(self) -> list[Path]:
        return sorted(self.log_dir.glob(f"serve-{self.port}-*.log"))

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_files)

    async def start(self) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / f"serve-{self.port}-{self.starts}.log"
        # One process unless a test asks for more: a kill -9 of `pid` must kill the server itself.
        args = self.args if "--processes" in self.args else ("--processes", "1", *self.args)
        with await asyncio.to_thread(path.open, "wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "serve", "--port", str(self.port), *args,
                env=self.env, cwd=ROOT, stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        try:
            await self.wait_ready()
        except BaseException:
            # Never leave it running: a supervisor (`--processes N`) whose test gave up would outlive the
            # run, starting children against a dropped database every 30 s and slowing every later test.
            await self.stop()
            raise

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN_S
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log_text()}")
                try:
                    async with http.get(self.url + "/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        await self.dump_stacks()
        raise AssertionError(f"serve did not become ready in {READY_WITHIN_S} s:\n{self.log_text()}")

    async def dump_stacks(self) -> None:
        """Have the server and its gateway processes write their threads' stacks into the log (SIGUSR1),
        so that a start that never finished says where it stood."""
        if self.proc is None or self.proc.returncode is not None:
            return
        pids = [self.proc.pid]
        with contextlib.suppress(OSError):
            path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            children = await asyncio.to_thread(path.read_text)
            pids += [int(pid) for pid in children.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(1.0)

    async def kill9(self) -> None:
        """SIGKILL: no cleanup, no flush, no goodbye: the process is simply gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        assert self.proc.returncode == -signal.SIGKILL

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def status(self, field: str) -> int:
        """A kB figure from /proc/PID/status: VmRSS (resident now) or VmHWM (the peak so far)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)


@dataclass
class Reply:
    status: int
    data: Any
    headers: Mapping[str, str]
    took_s: float
    ended_at: float  # time.monotonic() when the answer was in


class Http:
    """A small JSON client for a server process: `await http.call("POST", "/conversations", body, token)`."""

    def __init__(self, session: aiohttp.ClientSession, server: Server) -> None:
        self.session = session
        self.server = server

    async def reply(
        self, method: str, path: str, body: Any = None, token: str | None = None, within_s: float = 30
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = self.server.url + (path if path.startswith(("/api/", "/portal", "/readyz", "/healthz"))
                                 else "/api/v1" + path)  # fmt: skip
        started = time.monotonic()
        async with self.session.request(
            method, url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=within_s)
        ) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = await resp.text()
            ended = time.monotonic()
            return Reply(resp.status, data, dict(resp.headers), ended - started, ended)

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, within_s: float = 30
    ) -> tuple[int, Any]:
        got = await self.reply(method, path, body, token, within_s)
        return got.status, got.data

    async def ok(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        status, data = await self.call(method, path, body, token)
        assert status in (200, 201, 202), (method, path, status, data)
        return data


PASSWORD = "fault test password"


class People:
    """A practice made through a server's API: team members who can sign in, and clients."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.tokens: dict[str, str] = {}
        self.emails: dict[str, str] = {}
        self.api_key = ""


async def make_people(http: Http, made: dict[str, Any], team: list[str], clients: list[str]) -> People:
    people = People()
    people.api_key = key = made["api_key"]
    await http.ok("PATCH", "/practice/settings", {"client_messaging_enabled": True}, key)
    for who in team:
        email = f"{who}@faults.example"
        body = {"name": who.title(), "email": email, "roles": ["clinician"], "password": PASSWORD}
        people.ids[who] = (await http.ok("POST", "/team-members", body, key))["id"]
        people.emails[who] = email
        login = await http.ok("POST", "/auth/login", {"email": email, "password": PASSWORD})
        people.tokens[who] = login["token"]
    for who in clients:
        email = f"{who}@faults.example"
        body = {
            "name": f"{who.title()} Person",
            "email": email,
            "primary_clinician_id": people.ids[team[0]],
            "portal_access": True,
            "messaging_enabled": True,
        }
        people.ids[who] = (await http.ok("POST", "/clients", body, key))["id"]
        people.emails[who] = email
    return people


async def open_conversation(http: Http, token: str, *others: int) -> int:
    return int((await http.ok("POST", "/conversations", {"participant_ids": list(others)}, token))["id"])
