"""The dispatcher against a large stored history, and emails per second to the SMTP fake.

    python -m bench.dispatch [--history 1000,1000000] [--due 100] [--rounds 5] [--emails 1000]

1. Tick cost: a practice whose clients already have H stored messages (each with its outbox rows done
   long ago: the history is bulk-inserted with SQL, not sent through the API). Each round sends `--due` new
   messages through the real send path and times the dispatcher's ticks (`Dispatcher.run_once`: claim up to
   100 due rows, plan, send the emails over SMTP, settle the rows) until nothing is due, then again after
   the unread-email delay; the figure is the median over the rounds (a first round warms the caches and
   is not counted) of milliseconds per 100 rows handled. Goal (issue #7): the cost with 1,000,000 stored messages within 1.2× of the cost with
   1,000 — work proportional to what is due, not to what is stored. The history is concentrated on the same
   clients who get the new messages, the worst case for any query that is not bounded by an index.
2. Emails per second: `--emails` clients get one message each; the dispatcher sends the emails to the SMTP
   fake (its own process) and the fake's count of distinct Message-IDs is checked against them.

SQLite, the embedded default, in a file under a temporary directory; `--backend postgres` runs the same on
PostgreSQL (SECUREMSG_BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import ROOT, drop_pg_database, fresh_pg_database, pg_available
from gateway.app import create_app
from gateway.config import Config, new_data_key_line, parse_data_keys
from gateway.keys import CTX, DISPATCHER
from inbox import accounts, db, messaging
from inbox.clock import FakeClock
from inbox.models import OutboxJob, Participant

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLIENTS = 20


async def start_smtp_fake() -> tuple[asyncio.subprocess.Process, Path, int]:
    directory = Path(tempfile.mkdtemp(prefix="bench-smtp-"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.smtp_fake", str(directory), cwd=ROOT
    )
    for _ in range(200):
        if (directory / "info.json").exists():
            return proc, directory, int(json.loads((directory / "info.json").read_text())["port"])
        await asyncio.sleep(0.05)
    raise RuntimeError("SMTP fake did not start")


async def stop_smtp_fake(proc: asyncio.subprocess.Process, directory: Path) -> dict[str, int]:
    proc.terminate()
    await proc.wait()
    return json.loads((directory / "count.json").read_text())  # type: ignore[no-any-return]


def config_for(url: str, var: Path, smtp_port: int) -> Config:
    return Config(
        database_url=url,
        secret_key=b"bench-secret-0123456789abcdef",
        data_keys=parse_data_keys("bench", new_data_key_line("k1")),
        var_dir=var,
        dev_mail_dir=var / "mail",
        smtp_port=smtp_port,
        public_url="https://practice.example",
    )


@dataclass
class Cast:
    practice_id: int
    clinician: Participant
    clients: list[Participant]
    conversations: list[int]


async def make_cast(config: Config, clients: int) -> Cast:
    from gateway.app import make_context

    ctx = make_context(config, FakeClock(NOW - timedelta(days=30)))
    made = await accounts.create_practice(
        ctx, name="Bench Clinic", owner_name="Owner", owner_email=f"o-{uuid.uuid4().hex[:6]}@bench.example",
        owner_password="bench password 1",
    )  # fmt: skip
    practice = made.practice
    await accounts.update_settings(ctx, practice, {"client_messaging_enabled": True})
    clinician = await accounts.create_team_member(
        ctx,
        practice.id,
        name="Clinician",
        email=f"c-{uuid.uuid4().hex[:6]}@bench.example",
        roles=["clinician"],
    )
    people, convs = [], []
    for i in range(clients):
        person = await accounts.create_client(
            ctx, practice, name=f"Client {i}", email=f"client{i}-{uuid.uuid4().hex[:6]}@bench.example",
            primary_clinician_id=clinician.id, portal_access=True, messaging_enabled=True,
        )  # fmt: skip
        opened = await messaging.open_conversation(ctx, clinician, [person.id])
        assert opened.conversation is not None
        people.append(person)
        convs.append(opened.conversation.id)
    return Cast(practice.id, clinician, people, convs)


def _history_rows(cast: Cast, n: int, start: datetime) -> tuple[list[tuple[Any, ...]], list[int]]:
    rows = []
    recipients = []
    for i in range(n):
        k = i % len(cast.conversations)
        at = start + timedelta(seconds=i % 86400, microseconds=i % 1000)
        rows.append((cast.conversations[k], cast.clinician.id, os.urandom(48), None, at))
        recipients.append(cast.clients[k].id)
    return rows, recipients


async def bulk_history(url: str, cast: Cast, n: int) -> float:
    """H old messages to the clients, read long ago, each with its three outbox rows settled."""
    t0 = time.perf_counter()
    start = NOW - timedelta(days=20)
    messages, recipients = _history_rows(cast, n, start)
    if url.startswith("sqlite://"):
        conn = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None)
        conn.execute("BEGIN")
        first = conn.execute("SELECT COALESCE(MAX(id), 0) FROM message").fetchone()[0] + 1
        conn.executemany(
            "INSERT INTO message (conversation_id, sender_id, body_cipher, client_msg_id, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            ((c, s, b, m, a.isoformat(" ")) for c, s, b, m, a in messages),
        )
        conn.executemany(
            "INSERT INTO outbox_job (kind, status, due_at, attempts, practice_id, recipient_id, "
            "conversation_id, message_id, payload, created_at, finished_at, last_error) "
            "VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
            _outbox_rows(cast, messages, recipients, first, lambda d: d.isoformat(" ")),
        )
        conn.execute(
            "UPDATE conversation_member SET last_read_message_id = ? WHERE participant_id <> ?",
            (first + n - 1, cast.clinician.id),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
        conn.close()
    else:
        import asyncpg

        pg = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
        try:
            first = int(await pg.fetchval("SELECT COALESCE(MAX(id), 0) FROM message")) + 1
            await pg.copy_records_to_table(
                "message",
                records=[(first + i, *m) for i, m in enumerate(messages)],
                columns=["id", "conversation_id", "sender_id", "body_cipher", "client_msg_id", "created_at"],
            )
            await pg.execute("SELECT setval(pg_get_serial_sequence('message', 'id'), $1)", first + n)
            await pg.copy_records_to_table(
                "outbox_job",
                records=[
                    (r[0], r[1], r[2], 0, *r[3:])
                    for r in _outbox_rows(cast, messages, recipients, first, lambda d: d)
                ],
                columns=[
                    "kind", "status", "due_at", "attempts", "practice_id", "recipient_id", "conversation_id",
                    "message_id", "payload", "created_at", "finished_at", "last_error",
                ],
            )  # fmt: skip
            await pg.execute(
                "UPDATE conversation_member SET last_read_message_id = $1 WHERE participant_id <> $2",
                first + n - 1,
                cast.clinician.id,
            )
            await pg.execute("ANALYZE")
        finally:
            await pg.close()
    return time.perf_counter() - t0


def _outbox_rows(
    cast: Cast, messages: list[tuple[Any, ...]], recipients: list[int], first: int, ts: Any
) -> Any:
    for i, (conv, _, _, _, at) in enumerate(messages):
        common = (cast.practice_id, recipients[i], conv, first + i)
        done = at + timedelta(seconds=2)
        yield ("client_email", "done", ts(at), *common, "{}", ts(at), ts(done), f"sent as <outbox-{i}@bench>")
        yield ("unread_check", "skipped", ts(at + timedelta(seconds=600)), *common, "{}", ts(at), ts(done), "read in time")  # fmt: skip
        yield ("push", "skipped", ts(at), *common, '{"push_type":"new_message"}', ts(at), ts(done), "no device to push to")  # fmt: skip


@dataclass
class Ticks:
    times: list[float]
    rows: int

    @property
    def per_100_rows_ms(self) -> float:
        return sum(self.times) / max(1, self.rows) * 100 * 1000


async def run_ticks(app: web.Application) -> Ticks:
    dispatcher = app[DISPATCHER]
    times, rows = [], 0
    while True:
        t0 = time.perf_counter()
        handled = await dispatcher.run_once()
        if handled == 0:
            break
        times.append(time.perf_counter() - t0)
        rows += handled
    return Ticks(times, rows)


async def started_app(config: Config, clock: FakeClock) -> web.AppRunner:
    runner = web.AppRunner(create_app(config, clock=clock))
    await runner.setup()  # the database, the hub, the mailer and the outbox handlers
    return runner


async def tick_cost(backend: str, history: int, due: int, rounds: int, smtp_port: int) -> dict[str, Any]:
    var = Path(tempfile.mkdtemp(prefix=f"bench-dispatch-{backend}-"))
    url = f"sqlite://{var}/securemsg.sqlite3" if backend == "sqlite" else await fresh_pg_database()
    try:
        config = config_for(url, var, smtp_port)
        await db.migrate(url)
        await db.connect(url)
        try:
            cast = await make_cast(config, CLIENTS)
        finally:
            await db.disconnect()
        insert_s = await bulk_history(url, cast, history)
        clock = FakeClock(NOW)
        runner = await started_app(config, clock)
        try:
            app = runner.app
            ctx = app[CTX]
            stored = await OutboxJob.all().count()
            per_round: list[float] = []
            ticks = rows = 0
            for round_no in range(rounds + 1):  # the first round warms the caches and is not counted
                for i in range(due):
                    k = i % len(cast.conversations)
                    await messaging.send_message(ctx, cast.clinician, cast.conversations[k], f"new {i}")
                at_once = await run_ticks(app)  # new-message emails (R16) and pushes
                clock.advance(ctx.default_unread_delay_s + 1)
                later = await run_ticks(app)  # the unread checks (R17), covered by the emails above
                clock.advance(3600)  # past the hourly throttle: every round does the same work
                if round_no:
                    spent = sum(at_once.times) + sum(later.times)
                    per_round.append(spent / max(1, at_once.rows + later.rows) * 100 * 1000)
                    ticks += len(at_once.times) + len(later.times)
                    rows += at_once.rows + later.rows
            done = await OutboxJob.filter(kind="client_email", status="done", created_at__gte=NOW).count()
        finally:
            await runner.cleanup()
    finally:
        if backend != "sqlite":
            await drop_pg_database(url)
    return {
        "history": history,
        "stored_outbox_rows": stored,
        "insert_s": insert_s,
        "ticks": ticks,
        "rows": rows,
        "per_100_rows_ms": statistics.median(per_round),
        "rounds_ms": per_round,
        "emails_done": done,
    }


async def emails_per_second(backend: str, emails: int) -> dict[str, Any]:
    proc, directory, port = await start_smtp_fake()
    var = Path(tempfile.mkdtemp(prefix=f"bench-mail-{backend}-"))
    url = f"sqlite://{var}/securemsg.sqlite3" if backend == "sqlite" else await fresh_pg_database()
    try:
        config = config_for(url, var, port)
        await db.migrate(url)
        await db.connect(url)
        try:
            cast = await make_cast(config, emails)
        finally:
            await db.disconnect()
        clock = FakeClock(NOW)
        runner = await started_app(config, clock)
        try:
            ctx = runner.app[CTX]
            for person, conv in zip(cast.clients, cast.conversations, strict=True):
                await messaging.send_message(ctx, cast.clinician, conv, f"for {person.id}")
            t0 = time.perf_counter()
            ticks = await run_ticks(runner.app)
            elapsed = time.perf_counter() - t0
            sent = await OutboxJob.filter(kind="client_email", status="done").count()
        finally:
            await runner.cleanup()
    finally:
        counted = await stop_smtp_fake(proc, directory)
        if backend != "sqlite":
            await drop_pg_database(url)
    return {"emails": sent, "seconds": elapsed, "rows": ticks.rows, "fake": counted}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", default="1000,1000000")
    parser.add_argument("--due", type=int, default=100, help="new messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    if args.backend == "postgres" and not await pg_available():
        print("postgres: not reachable, skipped")
        return
    out = []
    proc, directory, port = await start_smtp_fake()
    try:
        results = [
            await tick_cost(args.backend, int(h), args.due, args.rounds, port)
            for h in args.history.split(",")
        ]
    finally:
        await stop_smtp_fake(proc, directory)
    for r in results:
        rounds = " ".join(f"{x:.0f}" for x in r["rounds_ms"])
        out.append(
            f"dispatch {args.backend}: {r['history']:>9,} stored messages ({r['stored_outbox_rows']:,} outbox rows, "
            f"bulk insert {r['insert_s']:.0f} s): {r['rows']} due rows in {r['ticks']} ticks, "
            f"{r['per_100_rows_ms']:.0f} ms per 100 rows (median of rounds: {rounds}; {r['emails_done']} emails)"
        )
    if len(results) >= 2:
        ratio = results[-1]["per_100_rows_ms"] / results[0]["per_100_rows_ms"]
        out.append(
            f"dispatch {args.backend}: tick cost at {results[-1]['history']:,} vs {results[0]['history']:,} stored: "
            f"{ratio:.2f}× (goal ≤ 1.2×: {'met' if ratio <= 1.2 else 'NOT met'})"
        )
    mail = await emails_per_second(args.backend, args.emails)
    rate = mail["emails"] / mail["seconds"] if mail["seconds"] else float("nan")
    out.append(
        f"emails {args.backend}: {mail['emails']} emails in {mail['seconds']:.2f} s = {rate:.0f} emails/s to the SMTP "
        f"fake (its own process; it received {mail['fake']['received']}, {mail['fake']['message_ids']} distinct Message-IDs)"
    )
    print("\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
