"""Outbox rows: notification work written in the same transaction as the change that implies it.

A restart between commit and send loses nothing, because the work is a row, not a task in memory. The
dispatcher claims due rows, drops what has become moot, sends, and marks them done.

Kinds written here:
- `client_email`  (R16) at once, to each client or contact recipient: "a secure message is waiting".
- `unread_check`  (R17) at sent_at + the practice's delay, for every recipient: email if still unread.
- `push`          (R19) at once, for every recipient: a `new_message` push to their opted-in devices.

Written elsewhere:
- `signin_email`  (R18) at once, when someone asks for an Instant Sign In link (`inbox.links`).
- `password_email` (R25) at once: a password reset link, or an invitation to a new team member
  (`inbox.passwords`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from inbox import db
from inbox.context import InboxContext
from inbox.models import TEAM, Message, OutboxJob, Participant, Practice
from inbox.store import outbox as outbox_store

log = logging.getLogger(__name__)
T = TypeVar("T")

CLIENT_EMAIL = "client_email"
UNREAD_CHECK = "unread_check"
PUSH = "push"
SIGNIN_EMAIL = "signin_email"
PASSWORD_EMAIL = "password_email"  # noqa: S105 - an outbox kind, not a secret
MESSAGE_KINDS = (CLIENT_EMAIL, UNREAD_CHECK, PUSH)


async def enqueue(ctx: InboxContext, kind: str, *, delay_s: float = 0, **fields: Any) -> OutboxJob:
    now = ctx.clock.now()
    return await outbox_store.add_job(kind, due_at=now + timedelta(seconds=delay_s), created_at=now, **fields)


def new_message_rows(
    *,
    practice_id: int,
    conversation_id: int,
    message_id: int,
    recipients: Sequence[tuple[int, str]],
    delay_s: float,
    now: datetime,
) -> list[dict[str, Any]]:
    """The outbox rows one new message implies, as column values; `recipients` are (id, kind) pairs.

    The send path (`inbox.sending`) writes these with prepared SQL; `enqueue_for_new_message` through the
    ORM. Both take them from here, so there is one definition of what a message sets in motion."""
    rows: list[dict[str, Any]] = []
    for recipient_id, kind in recipients:
        common = {
            "status": "pending",
            "attempts": 0,
            "practice_id": practice_id,
            "recipient_id": recipient_id,
            "conversation_id": conversation_id,
            "message_id": message_id,
            "created_at": now,
        }
        if kind != TEAM:
            rows.append({"kind": CLIENT_EMAIL, "due_at": now, "payload": {}, **common})
        rows.append(
            {"kind": UNREAD_CHECK, "due_at": now + timedelta(seconds=delay_s), "payload": {}, **common}
        )
        rows.append({"kind": PUSH, "due_at": now, "payload": {"push_type": "new_message"}, **common})
    return rows


async def enqueue_for_new_message(
    ctx: InboxContext,
    practice: Practice,
    msg: Message,
    sender: Participant,
    recipients: Sequence[Participant],
) -> None:
    rows = new_message_rows(
        practice_id=practice.id,
        conversation_id=msg.conversation_id,
        message_id=msg.id,
        recipients=[(r.id, r.kind) for r in recipients],
        delay_s=practice.unread_email_delay_s or ctx.default_unread_delay_s,
        now=ctx.clock.now(),
    )
    if rows:
        await outbox_store.add_rows(rows)


async def cancel_for_message(ctx: InboxContext, message_id: int) -> int:
    """A removed message's pending notifications are moot (R14)."""
    return await outbox_store.set_skipped_for_message(
        message_id, MESSAGE_KINDS, last_error="message removed", finished_at=ctx.clock.now()
    )


# --- claiming and finishing (the dispatcher's storage side) -------------------------------------------

# A claim a dead worker left behind expires after this long and the row is taken again (the default of
# `ctx.outbox_lease_s`, SECUREMSG_OUTBOX_LEASE_S).
LEASE_S = 120
BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 3600.0
GIVE_UP_AFTER_S = 24 * 3600.0


def backoff_s(attempts: int) -> float:
    """About a second, doubling, capped at an hour (attempts counts failures so far, from 1)."""
    return min(BACKOFF_START_S * 2 ** max(0, attempts - 1), BACKOFF_CAP_S)


async def claim_due_jobs(
    ctx: InboxContext, worker_id: str, *, limit: int = 100, kinds: Sequence[str] | None = None
) -> list[OutboxJob]:
    """Claim up to `limit` due rows for this worker.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several workers never take the same row. SQLite has one writer
    at a time, so the same UPDATE … RETURNING is already a single claimant (`inbox.store.outbox`).
    """
    now = ctx.clock.now()
    until = now + timedelta(seconds=ctx.outbox_lease_s)
    return await outbox_store.set_claim_on_due_rows(worker_id, until=until, now=now, limit=limit, kinds=kinds)


async def claim_rows(ctx: InboxContext, worker_id: str, ids: Sequence[int]) -> list[OutboxJob]:
    """Claim these pending rows for this worker too, due or not (a handler taking later work into the
    batch at hand); rows that another worker holds are left alone. Returns the rows now held."""
    if not ids or not worker_id:
        return []
    now = ctx.clock.now()
    return await outbox_store.set_claim_on_rows(
        worker_id, ids, now=now, until=now + timedelta(seconds=ctx.outbox_lease_s)
    )


async def release(job: OutboxJob) -> None:
    """Give a claimed row back untouched (a row taken in early whose email did not go)."""
    await outbox_store.set_released(job)


async def finish(ctx: InboxContext, job: OutboxJob, status: str, note: str | None = None) -> None:
    """done / skipped / failed: the row leaves the queue (guarded by the claim, so a stale worker cannot)."""
    await outbox_store.set_finished(job, status, note, ctx.clock.now())


async def postpone(ctx: InboxContext, job: OutboxJob, delay_s: float, note: str | None = None) -> None:
    """Due again later, and not a failure: the attempts and the give-up clock are untouched."""
    await outbox_store.set_postponed(job, ctx.clock.now() + timedelta(seconds=max(0.0, delay_s)), note)


async def retry_later(ctx: InboxContext, job: OutboxJob, error: str, retry_after: float | None = None) -> str:
    """Back off and try again, or give up after a day and record why. Returns the new status."""
    now = ctx.clock.now()
    attempts = job.attempts + 1
    if (now - job.created_at).total_seconds() >= GIVE_UP_AFTER_S:
        await outbox_store.set_given_up(
            job, attempts, f"gave up after {attempts} attempts over a day: {error}"[:2000], now
        )
        return "failed"
    delay = max(backoff_s(attempts), retry_after or 0.0)
    # Guarded by status too: a row a handler already settled (an email sent before the handler failed on
    # a later one) stays settled.
    await outbox_store.set_retry(job, attempts, error[:2000], now + timedelta(seconds=delay))
    return "pending"


# --- holding a claim while a batch is worked, and recording what was sent ------------------------------


class Lease:
    """One claim on the rows of a batch (their `claimed_by` token), kept alive while the batch is worked.

    A claim holds for `ctx.outbox_lease_s`; a batch may take longer than that (a slow SMTP relay, 3 s an
    email, 50 emails), and once a claim has run out another worker may take the row. So the dispatcher
    renews the claim every third of the lease while it works the batch (`renew`), and a handler asks
    `holds(jobs)` right before each email, push or webhook goes out. A row the renewal no longer finds under
    this claim's token was taken by another worker (its token changed) or settled: it is *lost* here and
    is not sent. Should the renewals have failed for half a lease (the database away), `holds` renews first
    and answers only once the database does, so no row is ever sent by two holders.

    The token is unique to the claim (`Dispatcher.claim_token`), not just to the worker, so even a worker
    that took a row again under a new claim is not mistaken for the holder of the old one."""

    def __init__(self, ctx: InboxContext, jobs: Sequence[OutboxJob]) -> None:
        self.ctx = ctx
        self.claimant = jobs[0].claimed_by if jobs else None
        self.held: set[int] = {j.id for j in jobs}
        self.lost: set[int] = set()
        untils = [j.claimed_until for j in jobs if j.claimed_until is not None]
        self.held_until = min(untils) if untils else ctx.clock.now()
        self._renewing = asyncio.Lock()

    def adopt(self, jobs: Iterable[OutboxJob]) -> None:
        """Rows a handler claimed under this claim too (`claim_rows`: later work joining the batch)."""
        for job in jobs:
            if job.claimed_by == self.claimant and job.id not in self.lost:
                self.held.add(job.id)

    async def renew(self) -> None:
        """Extend the claim on every row still held; the rows not found under the token are lost."""
        async with self._renewing:
            await self._renew()

    async def _renew(self) -> None:
        if not self.held or self.claimant is None:
            return
        now = self.ctx.clock.now()
        until = now + timedelta(seconds=self.ctx.outbox_lease_s)
        kept = await outbox_store.set_claim_until(sorted(self.held), self.claimant, until)
        self.lost |= self.held - kept
        self.held = kept
        self.held_until = until

    async def holds(self, jobs: Sequence[OutboxJob]) -> bool:
        """May these rows be sent now? True when every one is still held under this claim, for at least
        half a lease more (renewing first, and waiting for the database, when the last renewal is older)."""
        left = (self.held_until - self.ctx.clock.now()).total_seconds()
        if left < self.ctx.outbox_lease_s / 2:
            async with self._renewing:
                left = (self.held_until - self.ctx.clock.now()).total_seconds()
                if left < self.ctx.outbox_lease_s / 2:
                    await until_recorded(self._renew, "the renewal of a claim")
        missing = [j.id for j in jobs if j.id not in self.held]
        if missing:
            log.warning(
                "outbox rows %s: the claim was taken by another worker or settled; not sent by this one",
                missing,
            )
            return False
        return True


_CURRENT: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("outbox_lease", default=None)


async def backlog_by_kind(ctx: InboxContext, kinds: Iterable[str] = ()) -> dict[str, tuple[int, int, float]]:
    """For /metrics: per kind, how many rows are pending, how many of them are due, and how long the oldest
    due one has waited (s). One grouped query over the pending rows, on the (status, due_at) index, so it
    costs what is waiting, not what is stored. Each of `kinds` is in the answer, at zero when idle."""
    now = ctx.clock.now()
    out = dict.fromkeys(kinds, (0, 0, 0.0))
    for row in await outbox_store.get_backlog(now):
        n_due = int(row["due"] or 0)
        # The oldest pending row is the oldest due one whenever any is due.
        waited = max(0.0, (now - row["oldest"]).total_seconds()) if n_due and row["oldest"] else 0.0
        out[str(row["kind"])] = (int(row["n"]), n_due, waited)
    return out


def current_lease() -> Lease | None:
    """The lease of the batch this task works (set by the dispatcher around its handlers), or None when a
    handler is called directly (tests): then every row counts as held."""
    return _CURRENT.get()


def use_lease(lease: Lease | None) -> contextvars.Token[Lease | None]:
    return _CURRENT.set(lease)


def end_lease(token: contextvars.Token[Lease | None]) -> None:
    _CURRENT.reset(token)


async def still_held(jobs: Sequence[OutboxJob]) -> bool:
    """`current_lease().holds(jobs)`, or True outside a dispatcher's batch."""
    lease = current_lease()
    return True if lease is None else await lease.holds(jobs)


RECORD_RETRY_START_S = 0.1
RECORD_RETRY_CAP_S = 2.0
RECORD_WARN_EVERY_S = 30.0


async def until_recorded(write: Callable[[], Awaitable[T]], what: str) -> T:
    """Run `write` until the database takes it: for a write that records what has already happened (an
    email the SMTP server accepted, a push delivered). Giving up would leave the row pending, and it would
    be sent again once its claim ran out; so while the database is away (a restart, a lost connection)
    this waits and tries again, and the batch's claim is renewed meanwhile. Other errors are raised."""
    delay = RECORD_RETRY_START_S
    warned_at = 0.0
    while True:
        try:
            return await write()
        except Exception as exc:
            if not db.unavailable(exc):
                raise
            if time.monotonic() - warned_at >= RECORD_WARN_EVERY_S:
                warned_at = time.monotonic()
                log.warning(
                    "recording %s: the database is unavailable (%s); trying again until it answers",
                    what,
                    type(exc).__name__,
                )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECORD_RETRY_CAP_S)
