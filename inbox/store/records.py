"""A client's records (R21, R22): the client's conversations and their messages as transcripts read them,
chart notes (`chart_note`), and who may read them (`client_access`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from tortoise.expressions import Q

from inbox.models import CLIENT, ChartNote, ClientAccess, Conversation, Message, Participant
from inbox.store.orm import ids_of


async def get_access_granted(team_member_id: int, client_id: int) -> bool:
    """Whether this team member has been granted access to this client (a `client_access` row)."""
    return await ClientAccess.filter(client_id=client_id, team_member_id=team_member_id).exists()


async def list_people(ids: Collection[int]) -> list[Participant]:
    """These people, in no particular order."""
    return list(await Participant.filter(id__in=list(ids)))


async def list_record_clients(
    practice_id: int, limit: int, *, of_member: int | None = None
) -> list[Participant]:
    """The practice's clients, by name, at most `limit`; with `of_member`, only those that team member is
    the primary clinician of or has been granted access to."""
    query = Participant.filter(practice_id=practice_id, kind=CLIENT)
    if of_member is not None:
        granted = await ids_of(ClientAccess.filter(team_member_id=of_member), "client_id")
        query = query.filter(Q(primary_clinician_id=of_member) | Q(id__in=granted))
    return list(await query.order_by("name", "id").limit(limit))


async def list_client_conversation_ids(practice_id: int, client_id: int, *, by_id: bool = False) -> list[int]:
    """The ids of the client's conversations (in id order when `by_id`)."""
    query = Conversation.filter(practice_id=practice_id, client_id=client_id)
    if by_id:
        query = query.order_by("id")
    return await ids_of(query, "id")


async def list_messages_page(conversation_ids: Collection[int], after_id: int, limit: int) -> list[Message]:
    """The messages of these conversations after `after_id`, oldest first, at most `limit`."""
    return list(
        await Message.filter(conversation_id__in=conversation_ids, id__gt=after_id)
        .order_by("id")
        .limit(limit)
    )


async def list_messages_of(message_ids: Collection[int], conversation_ids: Collection[int]) -> list[Message]:
    """Those of these messages that belong to these conversations, in the order they were sent."""
    return list(
        await Message.filter(id__in=message_ids, conversation_id__in=conversation_ids).order_by(
            "created_at", "id"
        )
    )


async def add_chart_note(
    client_id: int, author_id: int, text_cipher: bytes, message_ids: list[int], created_at: datetime
) -> ChartNote:
    return await ChartNote.create(
        client_id=client_id,
        author_id=author_id,
        text_cipher=text_cipher,
        message_ids=message_ids,
        created_at=created_at,
    )


async def list_chart_notes(client_id: int, before_id: int, limit: int) -> list[ChartNote]:
    """The client's chart notes before `before_id` (all when 0), newest first, at most `limit`."""
    query = ChartNote.filter(client_id=client_id)
    if before_id:
        query = query.filter(id__lt=before_id)
    return list(await query.order_by("-id").limit(limit))
