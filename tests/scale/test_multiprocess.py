"""Scale-out for real: several `securemsg` processes on one PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.config import new_data_key_line
from tests.conftest import _pg_exec, _with_db, need, postgres_url, redis_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def scale_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    base = need("postgres", postgres_url())
    redis = need("redis", redis_url())
    name = f"securemsg_scale_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_exec(base, f'CREATE DATABASE "{name}"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREMSG_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SECUREMSG_DATABASE_URL": _with_db(base, name),
            "SECUREMSG_REDIS_URL": redis,
            "SECUREMSG_SECRET_KEY": "scale-test-secret-0123456789",
            "SECUREMSG_DATA_KEY": new_data_key_line("k1"),
            "SECUREMSG_VAR_DIR": str(tmp_path / "var"),
            "SECUREMSG_TESTING": "1",
        }
    )
    yield env
    asyncio.run(_pg_exec(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def cli(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process, url: str | None) -> None:
        self.proc = proc
        self.url = url

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_gateway(env: dict[str, str], *extra: str) -> Proc:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--port", str(port), "--processes", "1", *extra,
        env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return Proc(proc, url)
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    await Proc(proc, url).stop()
    raise AssertionError("gateway did not become ready")


@pytest.fixture
async def gateways(scale_env: dict[str, str]) -> AsyncIterator[tuple[dict[str, str], list[Proc]]]:
    await cli(scale_env, "migrate")
    procs = [await start_gateway(scale_env, "--no-worker"), await start_gateway(scale_env, "--no-worker")]
    yield scale_env, procs
    for p in procs:
        await p.stop()


async def test_a_message_sent_through_one_gateway_reaches_a_socket_on_the_other(gateways) -> None:
    env, (a, b) = gateways
    made = json.loads(
        await cli(
            env,
            "create-practice",
            "--name",
            "Scale Clinic",
            "--owner-name",
            "Owner",
            "--owner-email",
            f"o-{uuid.uuid4().hex[:6]}@scale.example",
            "--owner-password",
            "scale password 123",
        )
    )
    key = {"Authorization": f"Bearer {made['api_key']}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            a.url + "/api/v1/team-members",
            json={
                "name": "Colleague",
                "email": f"c-{uuid.uuid4().hex[:6]}@scale.example",
                "roles": ["clinician"],
                "password": "colleague password",
            },
            headers=key,
        ) as resp:
            assert resp.status == 201
            colleague = await resp.json()
        async with http.post(
            b.url + "/api/v1/auth/login", json={"email": colleague["email"], "password": "colleague password"}
        ) as resp:
            colleague_token = (await resp.json())["token"]
        owner_email = None
        async with http.get(a.url + "/api/v1/team-members", headers=key) as resp:
            owner_email = next(
                m["email"] for m in (await resp.json())["items"] if m["id"] == made["owner_id"]
            )
        async with http.post(
            a.url + "/api/v1/auth/login", json={"email": owner_email, "password": "scale password 123"}
        ) as resp:
            owner_token = (await resp.json())["token"]

        ws = await http.ws_connect(
            b.url + "/api/v1/ws", headers={"Authorization": f"Bearer {colleague_token}"}
        )
        assert (await ws.receive_json(timeout=5))["type"] == "unread"
        async with http.post(
            a.url + "/api/v1/conversations",
            json={"participant_ids": [colleague["id"]], "body": "sent through gateway A"},
            headers={"Authorization": f"Bearer {owner_token}"},
        ) as resp:
            assert resp.status == 201
        while True:
            event = await ws.receive_json(timeout=10)
            if event["type"] == "message.created":
                break
        assert event["message"]["body"] == "sent through gateway A"
        await ws.close()


async def start_redis(port: int, tmp: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(tmp), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            await w.wait_closed()
            return proc
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError("redis-server did not start")


async def test_fan_out_resumes_after_a_redis_restart(scale_env: dict[str, str], tmp_path: Path) -> None:
    import shutil

    if shutil.which("redis-server") is None:
        need("redis-server binary", None)
    port = free_port()
    redis_proc = await start_redis(port, tmp_path)
    env = dict(scale_env, SECUREMSG_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    await cli(env, "migrate")
    made = json.loads(
        await cli(env, "create-practice", "--name", "R", "--owner-name", "O", "--owner-email",
                  f"o-{uuid.uuid4().hex[:6]}@r.example", "--owner-password", "redis restart pw")
    )  # fmt: skip
    gw = await start_gateway(env, "--no-worker")
    other = await start_gateway(env, "--no-worker")  # holds the socket: events must come through Redis
    try:
        async with aiohttp.ClientSession() as http:
            key = {"Authorization": f"Bearer {made['api_key']}"}
            async with http.post(
                gw.url + "/api/v1/team-members",
                json={
                    "name": "C",
                    "email": f"c-{uuid.uuid4().hex[:6]}@r.example",
                    "roles": ["clinician"],
                    "password": "colleague password",
                },
                headers=key,
            ) as resp:
                colleague = await resp.json()
            async with http.post(
                gw.url + "/api/v1/auth/login",
                json={"email": colleague["email"], "password": "colleague password"},
            ) as resp:
                ctoken = (await resp.json())["token"]
            async with http.get(gw.url + "/api/v1/team-members", headers=key) as resp:
                owner_email = next(
                    m["email"] for m in (await resp.json())["items"] if m["id"] == made["owner_id"]
                )
            async with http.post(
                gw.url + "/api/v1/auth/login", json={"email": owner_email, "password": "redis restart pw"}
            ) as resp:
                otoken = (await resp.json())["token"]
            ws = await http.ws_connect(
                other.url + "/api/v1/ws", headers={"Authorization": f"Bearer {ctoken}"}
            )
            await ws.receive_json(timeout=5)

            redis_proc.kill()
            await redis_proc.wait()
            redis_proc = await start_redis(port, tmp_path)
            body = None
            # The listener reconnects by itself; keep sending until an event comes through again.
            for attempt in range(40):
                async with http.post(
                    gw.url + "/api/v1/conversations",
                    json={"participant_ids": [colleague["id"]], "body": f"after restart {attempt}"},
                    headers={"Authorization": f"Bearer {otoken}"},
                ) as resp:
                    assert resp.status in (200, 201)
                try:
                    while True:
                        event = await ws.receive_json(timeout=0.5)
                        if event["type"] == "message.created":
                            body = event["message"]["body"]
                            break
                except TimeoutError:
                    continue
                break
            assert body is not None and body.startswith("after restart")
            # Both processes survived the outage without a restart.
            assert gw.proc.returncode is None and other.proc.returncode is None
            await ws.close()
    finally:
        await gw.stop()
        await other.stop()
        redis_proc.kill()
        await redis_proc.wait()
