"""Purging old messages on an operator's decision (`inbox.purge`): what a purge would take, and the writes
of one batch, each through the batch's transaction (`conn`). The audit log's purge is `inbox.store.audit`'s
(`get_first_sealed`, `delete_sealed`, …)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.functions import Count

from inbox.models import Conversation, ConversationMember, Message, OutboxJob, Practice

# --- practices ------------------------------------------------------------------------------------------


async def list_practices(practice_id: int | None) -> list[Practice]:
    """Every practice (or only this one), by id."""
    query = Practice.all() if practice_id is None else Practice.filter(id=practice_id)
    return list(await query.order_by("id"))


async def get_practice(practice_id: int) -> Practice | None:
    return await Practice.filter(id=practice_id).first()


async def get_practice_names(ids: Collection[int]) -> dict[int, str]:
    """id → name of those of these practices that exist."""
    return dict(await Practice.filter(id__in=ids).values_list("id", "name"))


# --- what a purge would take ----------------------------------------------------------------------------


def _old_messages(cutoff: datetime, practice_id: int | None) -> Any:
    query = Message.filter(created_at__lt=cutoff)
    if practice_id is not None:
        query = query.filter(conversation__practice_id=practice_id)
    return query


async def count_old_messages(cutoff: datetime, practice_id: int | None) -> list[Any]:
    """(practice id, messages, conversations) of the messages made before `cutoff` (of this practice, when
    given), per practice that has any."""
    return list(
        await _old_messages(cutoff, practice_id)
        .annotate(n=Count("id"), convs=Count("conversation_id", distinct=True))
        .group_by("conversation__practice_id")
        .values_list("conversation__practice_id", "n", "convs")
    )


async def list_pending_message_jobs() -> list[Any]:
    """(message id, practice id) of every notification about a message still waiting."""
    return list(
        await OutboxJob.filter(status="pending", message_id__isnull=False).values_list(
            "message_id", "practice_id"
        )
    )


async def get_old_message_ids(cutoff: datetime, practice_id: int | None, ids: Sequence[int]) -> set[Any]:
    """Those of these messages made before `cutoff` (in this practice, when given)."""
    return set(await _old_messages(cutoff, practice_id).filter(id__in=list(ids)).values_list("id", flat=True))


# --- one batch, in its transaction ----------------------------------------------------------------------


async def list_old_messages(
    conn: BaseDBAsyncClient, cutoff: datetime, practice_id: int | None, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """The next `limit` messages made before `cutoff` (in this practice, when given), oldest ids first after
    `after_id`: their id, conversation_id, sender_id, removed_at and conversation__practice_id."""
    return list(
        await _old_messages(cutoff, practice_id)
        .filter(id__gt=after_id)
        .order_by("id")
        .limit(limit)
        .using_db(conn)
        .values("id", "conversation_id", "sender_id", "removed_at", "conversation__practice_id")
    )


async def list_members(
    conn: BaseDBAsyncClient, conversation_ids: Collection[int]
) -> list[ConversationMember]:
    """The members' rows (unread counts, read markers) of these conversations."""
    return list(await ConversationMember.filter(conversation_id__in=list(conversation_ids)).using_db(conn))


async def take_unread(conn: BaseDBAsyncClient, member_id: int, n: int) -> None:
    """`n` fewer unread messages for this member (none left when it had fewer), relative to the stored
    count, so that a send committing meanwhile is not undone."""
    member = ConversationMember.filter(id=member_id).using_db(conn)
    await member.filter(unread_count__gte=n).update(unread_count=F("unread_count") - n)
    await member.filter(unread_count__lt=n).update(unread_count=0)


async def delete_finished_jobs(conn: BaseDBAsyncClient, message_ids: Collection[int]) -> None:
    """Delete the outbox rows about these messages that are not waiting any more (their history)."""
    await OutboxJob.filter(message_id__in=message_ids).using_db(conn).exclude(status="pending").delete()


async def set_pending_jobs_skipped(
    conn: BaseDBAsyncClient, message_ids: Collection[int], reason: str, at: datetime
) -> None:
    """Settle the outbox rows about these messages still waiting: skipped, for this reason, at `at`."""
    await (
        OutboxJob.filter(message_id__in=message_ids)
        .using_db(conn)
        .filter(status="pending")
        .update(status="skipped", last_error=reason, finished_at=at)
    )


async def delete_messages(conn: BaseDBAsyncClient, ids: Collection[int]) -> None:
    await Message.filter(id__in=ids).using_db(conn).delete()


async def set_newest_messages(
    conn: BaseDBAsyncClient, conversation_ids: Collection[int], gone_ids: Collection[int]
) -> None:
    """Point each of these conversations whose last message was one of `gone_ids` at its newest remaining
    message (none, when none remains)."""
    for cid in (
        await Conversation.filter(id__in=list(conversation_ids), last_message_id__in=gone_ids)
        .using_db(conn)
        .values_list("id", flat=True)
    ):
        newest = (
            await Message.filter(conversation_id=cid)
            .using_db(conn)
            .order_by("-id")
            .limit(1)
            .values_list("id", flat=True)
        )
        await (
            Conversation.filter(id=cid, last_message_id__in=gone_ids)
            .using_db(conn)
            .update(last_message_id=newest[0] if newest else None)
        )
