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

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from inbox.context import InboxContext
from inbox.models import TEAM, Message, OutboxJob, Participant, Practice

CLIENT_EMAIL = "client_email"
UNREAD_CHECK = "unread_check"
PUSH = "push"
SIGNIN_EMAIL = "signin_email"
PASSWORD_EMAIL = "password_email"  # noqa: S105 - an outbox kind, not a secret
MESSAGE_KINDS = (CLIENT_EMAIL, UNREAD_CHECK, PUSH)


async def enqueue(ctx: InboxContext, kind: str, *, delay_s: float = 0, **fields: Any) -> OutboxJob:
    now = ctx.clock.now()
    return await OutboxJob.create(
        kind=kind, due_at=now + timedelta(seconds=delay_s), created_at=now, **fields
    )


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
        await OutboxJob.bulk_create([OutboxJob(**row) for row in rows])


async def cancel_for_message(ctx: InboxContext, message_id: int) -> int:
    """A removed message's pending notifications are moot (R14)."""
    return await OutboxJob.filter(message_id=message_id, status="pending", kind__in=MESSAGE_KINDS).update(
        status="skipped", last_error="message removed", finished_at=ctx.clock.now()
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
    at a time, so the same UPDATE … RETURNING is already a single claimant.
    """
    from tortoise import Tortoise

    conn = Tortoise.get_connection("default")
    now = ctx.clock.now()
    until = now + timedelta(seconds=ctx.outbox_lease_s)
    pg = conn.capabilities.dialect == "postgres"
    ph = (lambda i: f"${i}") if pg else (lambda i: "?")
    kind_sql = ""
    params: list[Any] = [worker_id, until, now, now]
    if kinds:
        marks = ",".join(ph(5 + i) for i in range(len(kinds)))
        kind_sql = f" AND kind IN ({marks})"
        params += list(kinds)
    params.append(limit)
    lock = " FOR UPDATE SKIP LOCKED" if pg else ""
    sql = (
        f"UPDATE outbox_job SET claimed_by={ph(1)}, claimed_until={ph(2)} WHERE id IN ("  # noqa: S608
        f"SELECT id FROM outbox_job WHERE status='pending' AND due_at <= {ph(3)} "
        f"AND (claimed_until IS NULL OR claimed_until < {ph(4)}){kind_sql} "
        f"ORDER BY due_at, id LIMIT {ph(len(params))}{lock}) RETURNING id"
    )
    rows = await conn.execute_query_dict(sql, params)
    ids = [int(r["id"]) for r in rows]
    if not ids:
        return []
    return list(await OutboxJob.filter(id__in=ids, claimed_by=worker_id).order_by("due_at", "id"))


async def claim_rows(ctx: InboxContext, worker_id: str, ids: Sequence[int]) -> list[OutboxJob]:
    """Claim these pending rows for this worker too, due or not (a handler taking later work into the
    batch at hand); rows that another worker holds are left alone. Returns the rows now held."""
    if not ids or not worker_id:
        return []
    now = ctx.clock.now()
    await OutboxJob.filter(
        Q(claimed_until=None) | Q(claimed_until__lt=now), id__in=list(ids), status="pending"
    ).update(claimed_by=worker_id, claimed_until=now + timedelta(seconds=ctx.outbox_lease_s))
    return list(await OutboxJob.filter(id__in=list(ids), claimed_by=worker_id, status="pending"))


async def release(job: OutboxJob) -> None:
    """Give a claimed row back untouched (a row taken in early whose email did not go)."""
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
        claimed_by=None, claimed_until=None
    )


async def finish(ctx: InboxContext, job: OutboxJob, status: str, note: str | None = None) -> None:
    """done / skipped / failed: the row leaves the queue (guarded by the claim, so a stale worker cannot)."""
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
        status=status, last_error=note, finished_at=ctx.clock.now(), claimed_until=None
    )


async def postpone(ctx: InboxContext, job: OutboxJob, delay_s: float, note: str | None = None) -> None:
    """Due again later, and not a failure: the attempts and the give-up clock are untouched."""
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
        due_at=ctx.clock.now() + timedelta(seconds=max(0.0, delay_s)),
        last_error=note,
        claimed_until=None,
        claimed_by=None,
    )


async def retry_later(ctx: InboxContext, job: OutboxJob, error: str, retry_after: float | None = None) -> str:
    """Back off and try again, or give up after a day and record why. Returns the new status."""
    now = ctx.clock.now()
    attempts = job.attempts + 1
    if (now - job.created_at).total_seconds() >= GIVE_UP_AFTER_S:
        await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
            status="failed",
            attempts=attempts,
            last_error=f"gave up after {attempts} attempts over a day: {error}"[:2000],
            finished_at=now,
            claimed_until=None,
        )
        return "failed"
    delay = max(backoff_s(attempts), retry_after or 0.0)
    # Guarded by status too: a row a handler already settled (an email sent before the handler failed on
    # a later one) stays settled.
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
        attempts=attempts,
        last_error=error[:2000],
        due_at=now + timedelta(seconds=delay),
        claimed_until=None,
        claimed_by=None,
    )
    return "pending"
