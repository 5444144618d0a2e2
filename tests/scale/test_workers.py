"""Scale-out with real processes on one PostgreSQL: two `serve --no-worker` gateways and `securemsg worker`
dispatchers, mail to the SMTP fake on loopback (SECUREMSG_SMTP_PORT). No outbox row is sent twice, and none is
stuck when a worker dies: its claims expire (SECUREMSG_OUTBOX_LEASE_S) and another worker takes the rows."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.fakes.smtp import FakeSmtp
from tests.scale.test_multiprocess import ROOT, Proc, cli, scale_env, start_gateway  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

PASSWORD = "scale clinician password"


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


async def start_worker(env: dict[str, str], log: Path) -> Proc:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "worker", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    for _ in range(300):  # the worker logs this once its dispatcher loop runs
        if "worker started" in read_log(log):
            return Proc(proc, None)
        assert proc.returncode is None, read_log(log)
        await asyncio.sleep(0.1)
    raise AssertionError(f"worker did not start: {read_log(log)}")


def worker_tag(proc: Proc) -> str:
    """The part of a dispatcher's worker id (host:pid:object) that names its process."""
    return f":{proc.proc.pid}:"


async def query(env: dict[str, str], sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(env["SECUREMSG_DATABASE_URL"].replace("postgres://", "postgresql://", 1))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


class Practice:
    """A practice made through the gateways as an integrator would: a clinician and `n` clients."""

    def __init__(self, api_key: str) -> None:
        self.key = {"Authorization": f"Bearer {api_key}"}
        self.clinician_token = ""
        self.clients: dict[int, str] = {}  # id -> email

    async def build(self, http: aiohttp.ClientSession, urls: list[str], n: int) -> None:
        async with http.patch(
            urls[0] + "/api/v1/practice/settings", json={"client_messaging_enabled": True}, headers=self.key
        ) as resp:
            assert resp.status == 200, await resp.text()
        email = f"clinician-{uuid.uuid4().hex[:6]}@scale.example"
        async with http.post(
            urls[0] + "/api/v1/team-members",
            json={"name": "Clinician", "email": email, "roles": ["clinician"], "password": PASSWORD},
            headers=self.key,
        ) as resp:
            assert resp.status == 201, await resp.text()
            clinician_id = (await resp.json())["id"]
        async with http.post(
            urls[1] + "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        ) as resp:
            assert resp.status == 200, await resp.text()
            self.clinician_token = (await resp.json())["token"]
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            address = f"client{i}-{uuid.uuid4().hex[:6]}@scale.example"
            async with (
                gate,
                http.post(
                    urls[i % 2] + "/api/v1/clients",
                    json={
                        "name": f"Client {i}",
                        "email": address,
                        "primary_clinician_id": clinician_id,
                        "portal_access": True,
                        "messaging_enabled": True,
                    },
                    headers=self.key,
                ) as resp,
            ):
                assert resp.status == 201, await resp.text()
                self.clients[(await resp.json())["id"]] = address

        await asyncio.gather(*(one(i) for i in range(n)))

    async def message_every_client(self, http: aiohttp.ClientSession, urls: list[str]) -> None:
        """One message to each client, through both gateways in turn: one new-message email each (R16)."""
        gate = asyncio.Semaphore(16)
        auth = {"Authorization": f"Bearer {self.clinician_token}"}

        async def one(i: int, client_id: int) -> None:
            async with (
                gate,
                http.post(
                    urls[i % 2] + "/api/v1/conversations",
                    json={"participant_ids": [client_id], "body": "Your forms are ready to review."},
                    headers=auth,
                ) as resp,
            ):
                assert resp.status == 201, await resp.text()

        await asyncio.gather(*(one(i, cid) for i, cid in enumerate(self.clients)))


def message_ids(smtp: FakeSmtp) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]) for m in smtp.received)


@pytest.fixture
def env(scale_env: dict[str, str], smtp: FakeSmtp) -> dict[str, str]:  # noqa: F811
    return dict(
        scale_env,
        SECUREMSG_SMTP_PORT=str(smtp.port),
        SECUREMSG_SEND_RATE_PER_MIN="100000",  # one clinician writes to a thousand clients in seconds
    )


async def new_practice(env: dict[str, str]) -> Practice:
    await cli(env, "migrate")
    made = json.loads(
        await cli(
            env, "create-practice", "--name", "Scale Clinic", "--owner-name", "Owner",
            "--owner-email", f"o-{uuid.uuid4().hex[:6]}@scale.example", "--owner-password", "scale owner password",
        )
    )  # fmt: skip
    return Practice(made["api_key"])


async def test_r16_two_gateways_and_two_workers_send_each_of_1000_emails_exactly_once(
    env: dict[str, str], smtp: FakeSmtp, tmp_path: Path
) -> None:
    practice = await new_practice(env)
    gateways = [await start_gateway(env, "--no-worker"), await start_gateway(env, "--no-worker")]
    workers = [await start_worker(env, tmp_path / f"worker{i}.log") for i in range(2)]
    urls = [g.url for g in gateways if g.url]
    try:
        async with aiohttp.ClientSession() as http:
            await practice.build(http, urls, 1000)
            await practice.message_every_client(http, urls)

        async def all_settled() -> bool:
            rows = await query(
                env, "SELECT count(*) AS n FROM outbox_job WHERE kind = 'client_email' AND status = 'pending'"
            )
            return len(smtp.received) >= 1000 and rows[0]["n"] == 0

        await until(all_settled, 180, "1,000 emails at the SMTP fake")
        await asyncio.sleep(2)  # anything sent twice would arrive now
        assert all(w.proc.returncode is None for w in workers)
    finally:
        for p in [*workers, *gateways]:
            await p.stop()

    ids = message_ids(smtp)
    assert len(smtp.received) == 1000 and len(ids) == 1000, ids.most_common(3)  # none twice
    recipients = Counter(r for m in smtp.received for r in m.rcpt_tos)
    assert recipients == Counter(practice.clients.values())  # every client once, nobody else
    for mail in smtp.received:
        assert "Your forms" not in mail.raw.decode(errors="replace")  # no message text in an email (R16)
    rows = await query(
        env, "SELECT status, claimed_by, last_error FROM outbox_job WHERE kind = 'client_email'"
    )
    assert len(rows) == 1000 and {r["status"] for r in rows} == {"done"}
    assert {r["last_error"].removeprefix("sent as ") for r in rows} == set(ids)
    by_worker = Counter(next(w for w in workers if worker_tag(w) in r["claimed_by"]) for r in rows)
    assert len(by_worker) == 2, by_worker  # both workers took their share, neither took a row twice


async def test_a_worker_killed_mid_batch_leaves_claims_that_expire_and_another_worker_sends_them(
    env: dict[str, str], smtp: FakeSmtp, tmp_path: Path
) -> None:
    lease_s = 4
    env = dict(env, SECUREMSG_OUTBOX_LEASE_S=str(lease_s))
    practice = await new_practice(env)
    gateway = await start_gateway(env, "--no-worker")
    assert gateway.url
    try:
        async with aiohttp.ClientSession() as http:
            await practice.build(http, [gateway.url, gateway.url], 30)
            await practice.message_every_client(http, [gateway.url, gateway.url])
    finally:
        await gateway.stop()

    # The first email's data gets no answer: worker A hangs on it, holding the claims on its whole batch.
    smtp.stall_next(1)
    first = await start_worker(env, tmp_path / "worker-a.log")

    async def stuck() -> bool:
        return len(smtp.dropped) == 1

    await until(stuck, 60, "worker A to be mid-send")
    held = await query(
        env,
        "SELECT id, claimed_until FROM outbox_job WHERE kind = 'client_email' AND status = 'pending' "
        "AND claimed_by LIKE $1",
        f"%{worker_tag(first)}%",
    )
    assert len(held) == 30
    first.proc.send_signal(signal.SIGKILL)  # no cleanup: its claims stay behind
    await first.proc.wait()
    assert first.proc.returncode == -signal.SIGKILL

    second = await start_worker(env, tmp_path / "worker-b.log")
    try:

        async def all_sent() -> bool:
            return len(message_ids(smtp)) >= 30

        await until(all_sent, 60 + lease_s, "the second worker to send the abandoned emails")
        await asyncio.sleep(2)
    finally:
        await second.stop()

    ids = message_ids(smtp)
    assert len(smtp.received) == 30 and len(ids) == 30  # each once at the fake
    assert Counter(r for m in smtp.received for r in m.rcpt_tos) == Counter(practice.clients.values())
    # The email that was on the wire when A died went again, under the same Message-ID.
    stalled_id = next(
        line for line in smtp.dropped[0].decode().splitlines() if line.startswith("Message-ID:")
    )
    assert stalled_id.split(":", 1)[1].strip() in ids
    after = {
        r["id"]: r
        for r in await query(
            env, "SELECT id, status, claimed_by, finished_at FROM outbox_job WHERE kind = 'client_email'"
        )
    }
    for row in held:
        taken = after[row["id"]]
        assert taken["status"] == "done" and worker_tag(second) in taken["claimed_by"]
        assert taken["finished_at"] >= row["claimed_until"]  # taken only once A's claim had expired
