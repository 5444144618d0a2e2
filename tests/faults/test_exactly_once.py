"""Exactly once under slow relays and database blips, on real processes (issue #14, docs/notifications.md):

- two workers, an SMTP relay that takes its time over every email and a lease far shorter than a batch:
  the worker working the batch keeps its claim, the idle one takes nothing, and every email goes once;
- PostgreSQL restarted with `-m fast` just as the SMTP server takes an email, while messages are sent: no
  request answers 500, the accepted email is recorded once the database is back (not sent again when its
  lease runs out), and every email goes once.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import _pg_exec, _with_db, need, postgres_url
from tests.fakes.smtp import FakeSmtp, ReceivedMail
from tests.faults.pgcluster import PrivateCluster
from tests.faults.procs import ROOT, Http, Server, cli, create_practice, make_people, server_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
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


def message_ids(smtp: FakeSmtp) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]) for m in smtp.received)


class Worker:
    """One `securemsg worker` process, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def tag(self) -> str:
        """The part of its dispatcher's claim tokens (host:pid:object/claim) that names this process."""
        assert self.proc is not None
        return f":{self.proc.pid}:"

    async def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "worker", env=self.env, cwd=ROOT, stdout=out, stderr=out
            )
        for _ in range(300):
            if "worker started" in self.log.read_text(errors="replace"):
                return
            assert self.proc.returncode is None, self.log.read_text(errors="replace")
            await asyncio.sleep(0.1)
        raise AssertionError(f"worker did not start: {self.log.read_text(errors='replace')}")

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A database of its own on the shared PostgreSQL server (the workers share it with the gateway)."""
    base = need("postgres", postgres_url())
    name = f"securemsg_exactly_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_exec(base, f'CREATE DATABASE "{name}"'))
    yield _with_db(base, name)
    asyncio.run(_pg_exec(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def message_clients(http: Http, token: str, client_ids: list[int]) -> None:
    for client_id in client_ids:
        await http.ok(
            "POST", "/conversations", {"participant_ids": [client_id], "body": "Forms ready."}, token
        )


async def test_r16_a_batch_longer_than_the_lease_is_sent_once_by_two_workers(
    fresh_pg: str, smtp: FakeSmtp, tmp_path: Path
) -> None:
    lease_s, emails, each_s = 2, 30, 0.25  # a batch of 7.5 s against a lease of 2 s
    env = server_env(
        fresh_pg,
        tmp_path / "var",
        SECUREMSG_SMTP_PORT=str(smtp.port),
        SECUREMSG_OUTBOX_LEASE_S=str(lease_s),
        SECUREMSG_SEND_RATE_PER_MIN="100000",
    )
    await cli(env, "migrate")
    made = await create_practice(env, "owner password 123")
    gateway = Server(env, tmp_path / "logs", "--no-worker")
    await gateway.start()
    clients = [f"c{i}" for i in range(emails)]
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(session, gateway)
            people = await make_people(http, made, ["clinician"], clients)
            await message_clients(http, people.tokens["clinician"], [people.ids[c] for c in clients])
    finally:
        await gateway.stop()

    smtp.slow_down(each_s)
    first, second = Worker(env, tmp_path / "worker-a.log"), Worker(env, tmp_path / "worker-b.log")
    try:
        await first.start()  # claims all the due rows in one batch (up to 100)
        await until(lambda: _at_least(smtp, 1), 30, "the first worker to be sending")
        await second.start()  # idle, polling: it would take every row whose claim ran out

        async def all_done() -> bool:
            rows = await query(
                fresh_pg,
                "SELECT count(*) AS n FROM outbox_job WHERE kind = 'client_email' AND status = 'done'",
            )
            return rows[0]["n"] == emails

        await until(all_done, 60, "every email to be sent")
        await asyncio.sleep(lease_s + 1)  # a row taken again would go out now
    finally:
        await first.stop()
        await second.stop()

    ids = message_ids(smtp)
    assert len(ids) == emails and set(ids.values()) == {1}, ids.most_common(3)  # none twice
    assert sorted(r for m in smtp.received for r in m.rcpt_tos) == sorted(people.emails[c] for c in clients)
    rows = await query(fresh_pg, "SELECT claimed_by, last_error FROM outbox_job WHERE kind = 'client_email'")
    # The first worker held its whole batch to the end; the idle one never had a row to take.
    assert all(first.tag in r["claimed_by"] for r in rows), Counter(r["claimed_by"] for r in rows)
    assert {r["last_error"].removeprefix("sent as ") for r in rows} == set(ids)


async def _at_least(smtp: FakeSmtp, n: int) -> bool:
    return len(smtp.received) >= n


@pytest.fixture
async def cluster() -> AsyncIterator[PrivateCluster]:
    pg = PrivateCluster()
    try:
        await pg.init()
        yield pg
    finally:
        await pg.destroy()


async def test_r16_a_fast_postgres_restart_as_an_email_is_accepted_gives_no_500_and_no_resend(
    cluster: PrivateCluster, smtp: FakeSmtp, tmp_path: Path
) -> None:
    lease_s, emails, down_s = 3, 12, 4.0
    env = server_env(
        cluster.url,
        tmp_path / "var",
        SECUREMSG_SMTP_PORT=str(smtp.port),
        SECUREMSG_OUTBOX_LEASE_S=str(lease_s),
        SECUREMSG_SEND_RATE_PER_MIN="100000",
    )
    made = await create_practice(env, "owner password 123")
    server = Server(env, tmp_path / "logs")  # `serve` with its dispatcher in the same process
    await server.start()
    clients = [f"c{i}" for i in range(emails)]
    stopped = asyncio.Event()
    caught: list[ReceivedMail] = []

    async def restart_as_it_is_accepted(mail: ReceivedMail) -> None:
        # The third email: recorded by the server, and its 250 goes back only once PostgreSQL is down,
        # so the worker's record of "sent" meets a database that is restarting.
        if len(smtp.received) == 3 and not caught:
            caught.append(mail)
            await cluster.stop("fast")
            stopped.set()

    replies: list[int] = []
    done = asyncio.Event()

    async def keep_sending(http: Http, token: str, conversation: int) -> None:
        n = 0
        while not done.is_set():
            got = await http.reply(
                "POST", f"/conversations/{conversation}/messages", {"body": f"note {n}"}, token, within_s=60
            )
            replies.append(got.status)
            n += 1
            await asyncio.sleep(0.1)

    try:
        async with aiohttp.ClientSession() as session:
            http = Http(session, server)
            people = await make_people(http, made, ["clinician", "colleague"], clients)
            team = await http.ok(
                "POST",
                "/conversations",
                {"participant_ids": [people.ids["colleague"]]},
                people.tokens["clinician"],
            )
            smtp.slow_down(0.2)
            smtp.before_answer(restart_as_it_is_accepted)
            sending = asyncio.create_task(keep_sending(http, people.tokens["clinician"], int(team["id"])))
            await message_clients(http, people.tokens["clinician"], [people.ids[c] for c in clients])
            await asyncio.wait_for(stopped.wait(), timeout=60)
            await asyncio.sleep(down_s)
            await cluster.start()

            async def all_done() -> bool:
                rows = await query(
                    cluster.url,
                    "SELECT count(*) AS n FROM outbox_job WHERE kind = 'client_email' AND status = 'done'",
                )
                return rows[0]["n"] == emails

            await until(all_done, 60, "every email to be recorded")
            await asyncio.sleep(lease_s + 2)  # an unrecorded email would go again once its lease ran out
            done.set()
            await asyncio.wait_for(sending, timeout=90)
    finally:
        await server.stop()

    assert 503 in replies and 201 in replies, Counter(replies)  # sends went on across the restart
    assert set(replies) <= {201, 503}, Counter(replies)  # never a 500
    ids = message_ids(smtp)
    assert len(ids) == emails and set(ids.values()) == {1}, ids.most_common(3)
    assert sorted(r for m in smtp.received for r in m.rcpt_tos) == sorted(people.emails[c] for c in clients)
    accepted = str(caught[0].message["Message-ID"])
    rows = await query(
        cluster.url, "SELECT status, last_error FROM outbox_job WHERE last_error = $1", f"sent as {accepted}"
    )
    assert [r["status"] for r in rows] == ["done"]
    assert "recording the email sent for outbox row" in server.log_text()
