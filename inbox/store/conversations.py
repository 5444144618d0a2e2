"""Conversations (`conversation`) and their members' state (`conversation_member`: unread counts, read
markers, activity)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from tortoise.expressions import F, Q
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from inbox.models import Conversation, ConversationMember, Participant
from inbox.store.orm import ids_of


async def get_conversation_of_member(
    practice_id: int, conversation_id: int, participant_id: int
) -> Conversation | None:
    """The practice's conversation, if this participant is one of its members."""
    conv = await Conversation.filter(id=conversation_id, practice_id=practice_id).first()
    if (
        conv is None
        or not await ConversationMember.filter(
            conversation_id=conv.id, participant_id=participant_id
        ).exists()
    ):
        return None
    return conv


async def get_members(conversation_id: int) -> list[Participant]:
    """The conversation's members, by id."""
    ids = await ids_of(ConversationMember.filter(conversation_id=conversation_id), "participant_id")
    return list(await Participant.filter(id__in=list(ids)).order_by("id"))


async def get_members_unordered(conversation_id: int) -> list[Participant]:
    """The conversation's members, in the database's order."""
    ids = await ids_of(ConversationMember.filter(conversation_id=conversation_id), "participant_id")
    return list(await Participant.filter(id__in=ids))


async def find_by_member_key(practice_id: int, member_key: str) -> Conversation | None:
    """The practice's conversation of exactly these members (R11), if there is one."""
    return await Conversation.filter(practice_id=practice_id, member_key=member_key).first()


async def get_writer_ids(conversation_id: int) -> list[int]:
    """The members who have written in the conversation."""
    return await ids_of(
        ConversationMember.filter(conversation_id=conversation_id, has_written=True), "participant_id"
    )


async def add_conversation(
    practice_id: int, member_key: str, client_id: int | None, member_ids: Sequence[int], now: datetime
) -> Conversation:
    """The conversation and its members, in one transaction; IntegrityError when one of the same members
    was added a moment ago."""
    async with in_transaction():
        conv = await Conversation.create(
            practice_id=practice_id, member_key=member_key, client_id=client_id, created_at=now
        )
        await ConversationMember.bulk_create(
            [
                ConversationMember(conversation_id=conv.id, participant_id=pid, last_activity_at=now)
                for pid in member_ids
            ]
        )
    return conv


async def list_memberships_page(
    participant_id: int, after: tuple[datetime, int] | None, limit: int
) -> list[ConversationMember]:
    """A participant's memberships, the most recently active first, after the cursor `(activity, id)`."""
    query = ConversationMember.filter(participant_id=participant_id)
    if after is not None:
        at, cid = after
        query = query.filter(Q(last_activity_at__lt=at) | Q(last_activity_at=at, conversation_id__lt=cid))
    return list(await query.order_by("-last_activity_at", "-conversation_id").limit(limit))


async def get_conversations(ids: Collection[int]) -> dict[int, Conversation]:
    return {c.id: c for c in await Conversation.filter(id__in=list(ids))}


async def get_member_pairs(
    conversation_ids: Collection[int], exclude_participant_id: int | None = None
) -> list[tuple[int, int]]:
    """(conversation id, participant id) of every member of these conversations (but one, if given)."""
    query = ConversationMember.filter(conversation_id__in=list(conversation_ids))
    if exclude_participant_id is not None:
        query = query.exclude(participant_id=exclude_participant_id)
    rows = await query.values_list("conversation_id", "participant_id")
    return [(int(c), int(p)) for c, p in rows]


async def get_recent_conversation_ids(participant_id: int, limit: int) -> list[int]:
    """A participant's conversations, the most recently active first."""
    return await ids_of(
        ConversationMember.filter(participant_id=participant_id).order_by("-last_activity_at").limit(limit),
        "conversation_id",
    )


async def get_conversation_ids(participant_id: int) -> list[int]:
    return await ids_of(ConversationMember.filter(participant_id=participant_id), "conversation_id")


async def get_client_conversation_ids(client_id: int) -> list[int]:
    """The conversations in this client's file (`conversation.client_id`)."""
    return await ids_of(Conversation.filter(client_id=client_id), "id")


async def get_member_ids(conversation_ids: Collection[int]) -> list[int]:
    """Everyone in any of these conversations (an id once per conversation)."""
    return await ids_of(
        ConversationMember.filter(conversation_id__in=list(conversation_ids)), "participant_id"
    )


async def get_unread_totals(participant_ids: Sequence[int]) -> dict[int, int]:
    """Each participant's unread messages over all their conversations (0 for none)."""
    if not participant_ids:
        return {}
    rows = (
        await ConversationMember.filter(participant_id__in=list(participant_ids))
        .annotate(total=Sum("unread_count"))
        .group_by("participant_id")
        .values_list("participant_id", "total")
    )
    totals = {int(pid): int(total or 0) for pid, total in rows}
    return {pid: totals.get(pid, 0) for pid in participant_ids}


async def get_member(conversation_id: int, participant_id: int) -> ConversationMember:
    return await ConversationMember.get(conversation_id=conversation_id, participant_id=participant_id)


async def get_member_or_none(conversation_id: int, participant_id: int) -> ConversationMember | None:
    return await ConversationMember.get_or_none(
        conversation_id=conversation_id, participant_id=participant_id
    )


async def set_read(member_id: int, up_to_message_id: int, unread_count: int) -> None:
    await ConversationMember.filter(id=member_id).update(
        last_read_message_id=up_to_message_id, unread_count=unread_count
    )


async def get_unread_member_ids(
    conversation_id: int, message_id: int, exclude_participant_id: int
) -> list[int]:
    """The members (but one) who have not read up to this message and have something unread: the ones
    whose count it is part of."""
    return await ids_of(
        ConversationMember.filter(
            Q(last_read_message_id__lt=message_id) | Q(last_read_message_id=None),
            conversation_id=conversation_id,
            unread_count__gt=0,
        ).exclude(participant_id=exclude_participant_id),
        "participant_id",
    )


async def take_one_unread(conversation_id: int, participant_ids: Collection[int]) -> None:
    """One fewer unread message in this conversation for these members."""
    await ConversationMember.filter(
        conversation_id=conversation_id, participant_id__in=list(participant_ids)
    ).update(unread_count=F("unread_count") - 1)
