"""Outbox rows: notification work written in the same transaction as the change that implies it.

A restart between commit and send loses nothing, because the work is a row, not a task in memory. The
dispatcher claims due rows, drops what has become moot, sends, and marks them done.

Kinds written here:
- `client_email`  (R16) at once, to each client or contact recipient: "a secure message is waiting".
- `unread_check`  (R17) at sent_at + the practice's delay, for every recipient: email if still unread.
- `push`          (R19) at once, for every recipient: a `new_message` push to their opted-in devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from inbox.context import InboxContext
from inbox.models import TEAM, Message, OutboxJob, Participant, Practice

CLIENT_EMAIL = "client_email"
UNREAD_CHECK = "unread_check"
PUSH = "push"
MESSAGE_KINDS = (CLIENT_EMAIL, UNREAD_CHECK, PUSH)


async def enqueue(ctx: InboxContext, kind: str, *, delay_s: float = 0, **fields: Any) -> OutboxJob:
    now = ctx.clock.now()
    return await OutboxJob.create(
        kind=kind, due_at=now + timedelta(seconds=delay_s), created_at=now, **fields
    )


async def enqueue_for_new_message(
    ctx: InboxContext,
    practice: Practice,
    msg: Message,
    sender: Participant,
    recipients: Sequence[Participant],
) -> None:
    now = ctx.clock.now()
    delay = practice.unread_email_delay_s or ctx.default_unread_delay_s
    rows: list[OutboxJob] = []
    for r in recipients:
        common = {
            "practice_id": practice.id,
            "recipient_id": r.id,
            "conversation_id": msg.conversation_id,
            "message_id": msg.id,
            "created_at": now,
        }
        if r.kind != TEAM:
            rows.append(OutboxJob(kind=CLIENT_EMAIL, due_at=now, **common))
        rows.append(OutboxJob(kind=UNREAD_CHECK, due_at=now + timedelta(seconds=delay), **common))
        rows.append(OutboxJob(kind=PUSH, due_at=now, payload={"push_type": "new_message"}, **common))
    if rows:
        await OutboxJob.bulk_create(rows)


async def cancel_for_message(ctx: InboxContext, message_id: int) -> int:
    """A removed message's pending notifications are moot (R14)."""
    return await OutboxJob.filter(message_id=message_id, status="pending", kind__in=MESSAGE_KINDS).update(
        status="skipped", last_error="message removed", finished_at=ctx.clock.now()
    )
