"""What the dispatcher's planners (`inbox.notify`, `inbox.pushes`) read about the rows of a batch: the
messages, people, practices and memberships they name, each by id, in one query a table."""

from __future__ import annotations

from collections.abc import Collection

from inbox.models import ConversationMember, Message, Participant, Practice


async def get_messages(ids: Collection[int]) -> dict[int, Message]:
    return {m.id: m for m in await Message.filter(id__in=list(ids))}


async def get_people(ids: Collection[int]) -> dict[int, Participant]:
    return {p.id: p for p in await Participant.filter(id__in=list(ids))}


async def get_practices(ids: Collection[int | None]) -> dict[int, Practice]:
    """These practices, by id (a None among the ids, as an outbox row may hold, matches none)."""
    return {p.id: p for p in await Practice.filter(id__in=list(ids))}


async def get_memberships(
    conversation_ids: Collection[int], participant_ids: Collection[int]
) -> dict[tuple[int, int], ConversationMember]:
    """The memberships of these people in these conversations, by (conversation id, participant id)."""
    return {
        (m.conversation_id, m.participant_id): m
        for m in await ConversationMember.filter(
            conversation_id__in=list(conversation_ids), participant_id__in=list(participant_ids)
        )
    }


async def get_read_upto(
    conversation_ids: Collection[int], participant_ids: Collection[int]
) -> dict[tuple[int, int], int | None]:
    """How far each of these people has read in each of these conversations they are in (the last message
    read, None for none yet), by (conversation id, participant id)."""
    rows = await ConversationMember.filter(
        conversation_id__in=list(conversation_ids), participant_id__in=list(participant_ids)
    ).values_list("conversation_id", "participant_id", "last_read_message_id")
    return {(int(c), int(p)): (int(r) if r is not None else None) for c, p, r in rows}


async def get_participant_exists(practice_id: int, participant_id: int) -> bool:
    """Whether this participant is one of the practice's."""
    return await Participant.filter(id=participant_id, practice_id=practice_id).exists()
