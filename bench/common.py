"""Shared pieces of the benchmarks: start real server processes, make a practice, measure, print tables.

Benchmarks are not tests: they print figures side by side with a baseline measured in the same run, so a
noisy shared machine moves both sides together and the ratio stays meaningful.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from gateway.config import new_data_key_line

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("SECUREMSG_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SECUREMSG_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(latencies_s: Sequence[float]) -> str:
    ms = [x * 1000 for x in latencies_s]
    return f"p50 {percentile(ms, 50):6.2f}  p95 {percentile(ms, 95):6.2f}  p99 {percentile(ms, 99):6.2f} ms"


def base_env(var_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREMSG_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SECUREMSG_VAR_DIR": str(var_dir),
            "SECUREMSG_SECRET_KEY": "bench-secret-0123456789abcdef",
            "SECUREMSG_DATA_KEY": new_data_key_line("k1"),
            # The benchmarks measure the send path, limiter included, not the flood guard saying 429.
            "SECUREMSG_SEND_RATE_PER_MIN": "10000000",
            "SECUREMSG_SMTP_PORT": str(
                free_port()
            ),  # nothing listens: emails stay queued, never block a send
        }
    )
    if database_url:
        env["SECUREMSG_DATABASE_URL"] = database_url
    env.update(extra)
    return env


async def run_cli(env: dict[str, str], *args: str, cwd: Path = ROOT) -> str:
    """`securemsg ARGS` from the code tree `cwd` (bench/ab.py runs another commit's tree)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"securemsg {args[0]} failed: {err.decode()}")
    return out.decode()


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def wait_ready(url: str, path: str = "/healthz") -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(url + path) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def start_process(
    argv: list[str], env: dict[str, str], port: int, ready_path: str = "/healthz", cwd: Path = ROOT
) -> Server:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    server = Server(proc, url)
    try:
        await wait_ready(url, ready_path)
    except BaseException:
        await server.stop()  # never left running behind a benchmark that gave up on it
        raise
    return server


async def start_securemsg(
    env: dict[str, str], *extra: str, variant: Sequence[str] = (), cwd: Path = ROOT
) -> Server:
    """One process unless `extra` asks for more (`--processes N`): the figures are per process. `variant`:
    flags of bench/variant_server.py (`--uvloop`, `--orjson`) to start it with."""
    port = free_port()
    count = [] if "--processes" in extra else ["--processes", "1"]
    launcher = ["bench.variant_server", *variant, "--"] if variant else ["gateway"]
    return await start_process(
        [sys.executable, "-m", *launcher, "serve", "--port", str(port), *count, *extra],
        env,
        port,
        "/readyz",
        cwd,
    )


async def start_bare(loop: str = "asyncio") -> Server:
    port = free_port()
    return await start_process(
        [sys.executable, "-m", "bench.bare", str(port), *([loop] if loop != "asyncio" else [])],
        base_env(Path(tempfile.gettempdir())),
        port,
    )


@dataclass
class Practice:
    api_key: str
    sender_token: str
    sender_id: int
    recipient_token: str
    recipient_id: int
    conversation_id: int


async def make_practice(env: dict[str, str], url: str, cwd: Path = ROOT) -> Practice:
    made = json.loads(
        await run_cli(
            env, "create-practice", "--name", "Bench Clinic", "--owner-name", "Owner",
            "--owner-email", f"o-{uuid.uuid4().hex[:8]}@bench.example", "--owner-password", "bench password 1",
            cwd=cwd,
        )
    )  # fmt: skip
    key = {"Authorization": f"Bearer {made['api_key']}"}
    async with aiohttp.ClientSession() as http:
        people = []
        for who in ("sender", "recipient"):
            email = f"{who}-{uuid.uuid4().hex[:8]}@bench.example"
            async with http.post(
                url + "/api/v1/team-members",
                json={"name": who, "email": email, "roles": ["clinician"], "password": "bench password 1"},
                headers=key,
            ) as resp:
                member = await resp.json()
            async with http.post(
                url + "/api/v1/auth/login", json={"email": email, "password": "bench password 1"}
            ) as resp:
                people.append((member["id"], (await resp.json())["token"]))
        async with http.post(
            url + "/api/v1/conversations",
            json={"participant_ids": [people[1][0]]},
            headers={"Authorization": f"Bearer {people[0][1]}"},
        ) as resp:
            conv = await resp.json()
    return Practice(made["api_key"], people[0][1], people[0][0], people[1][1], people[1][0], conv["id"])


async def more_conversations(url: str, practice: Practice, n: int) -> list[int]:
    """n conversations of the sender's, each with a new team member: sends spread over them do not all wait
    for the same rows (one conversation's unread counts), as a practice's sends would not."""
    ids = [practice.conversation_id]
    async with aiohttp.ClientSession() as http:
        for i in range(n - 1):
            async with http.post(
                url + "/api/v1/team-members",
                json={
                    "name": f"colleague {i}",
                    "email": f"c{i}-{uuid.uuid4().hex[:8]}@bench.example",
                    "roles": ["clinician"],
                },
                headers={"Authorization": f"Bearer {practice.api_key}"},
            ) as resp:
                member = await resp.json()
            async with http.post(
                url + "/api/v1/conversations",
                json={"participant_ids": [member["id"]]},
                headers={"Authorization": f"Bearer {practice.sender_token}"},
            ) as resp:
                ids.append((await resp.json())["id"])
    return ids


async def fresh_pg_database() -> str:
    import asyncpg

    name = f"securemsg_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_URL.rsplit("/", 1)[0] + "/" + name


async def drop_pg_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def pg_available() -> bool:
    try:
        import asyncpg

        conn = await asyncio.wait_for(asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1)), 2)
        await conn.close()
        return True
    except Exception:
        return False


async def redis_available() -> bool:
    try:
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()
    except Exception:
        return False
