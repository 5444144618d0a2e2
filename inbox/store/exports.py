"""Data exports (`export`, R21–R23): the export rows, what an export's zip reads (the conversations in its
scope, their members, their messages page by page), and the lease of the background job writing it."""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import Q, Subquery

from inbox.models import TEAM, Conversation, ConversationMember, Export, Message, OutboxJob, Participant
from inbox.store.orm import ids_of


async def get_export(export_id: int) -> Export | None:
    return await Export.get_or_none(id=export_id)


async def get_practice_export(practice_id: int, export_id: int) -> Export | None:
    """The practice's export with this id (another practice's does not exist)."""
    return await Export.filter(id=export_id, practice_id=practice_id).first()


async def list_exports(practice_id: int, limit: int) -> list[Export]:
    """The practice's exports, newest first."""
    return list(await Export.filter(practice_id=practice_id).order_by("-id").limit(limit))


async def list_ready_exports_before(finished_before: datetime, limit: int) -> list[Export]:
    """Ready exports finished before this time, oldest id first (their files are past retention)."""
    return list(
        await Export.filter(status="ready", finished_at__lt=finished_before).order_by("id").limit(limit)
    )


async def add_export(
    practice_id: int,
    requested_by_id: int,
    scope: str,
    clinician_id: int | None,
    require_password: bool,
    created_at: datetime,
) -> Export:
    """A new export, pending."""
    return await Export.create(
        practice_id=practice_id,
        requested_by_id=requested_by_id,
        scope=scope,
        clinician_id=clinician_id,
        require_password=require_password,
        status="pending",
        created_at=created_at,
    )


async def set_password_cipher(export: Export, cipher: bytes) -> None:
    """The export's sealed password (sealed under its id, so it is set once the row exists)."""
    export.password_cipher = cipher
    await export.save(update_fields=["password_cipher"])


async def set_expired(export_id: int, expired_status: str) -> bool:
    """A ready export whose file was deleted: it takes `expired_status` and loses its path. False when it
    was no longer ready (someone else expired it meanwhile)."""
    return bool(
        await Export.filter(id=export_id, status="ready").update(status=expired_status, file_path=None)
    )


async def set_ready(export_id: int, file_path: str, finished_at: datetime) -> bool:
    """A pending export written to `file_path`; False when it was no longer pending (finished elsewhere)."""
    return bool(
        await Export.filter(id=export_id, status="pending").update(
            status="ready", file_path=file_path, finished_at=finished_at, error=None
        )
    )


async def set_failed(export_id: int, error: str, finished_at: datetime) -> bool:
    """A pending export that failed; False when it was no longer pending."""
    return bool(
        await Export.filter(id=export_id, status="pending").update(
            status="failed", error=error, finished_at=finished_at
        )
    )


async def set_job_claimed_until(job_id: int, claimed_by: str | None, until: datetime) -> bool:
    """Extend a worker's lease on its pending outbox job; False when the job is no longer that worker's."""
    return bool(
        await OutboxJob.filter(id=job_id, claimed_by=claimed_by, status="pending").update(claimed_until=until)
    )


async def get_team_member(practice_id: int, member_id: int) -> Participant | None:
    """The practice's team member with this id (a clinician an export may be scoped to), if there is one."""
    return await Participant.filter(id=member_id, practice_id=practice_id, kind=TEAM).first()


async def get_participant(participant_id: int | None) -> Participant | None:
    """This person (the one who asked for an export, its clinician), or None when gone."""
    return await Participant.get_or_none(id=participant_id)


async def list_conversations_page(
    practice_id: int,
    after_id: int,
    limit: int,
    *,
    of_clinician: bool = False,
    clinician_id: int | None = None,
) -> list[Conversation]:
    """The practice's conversations after `after_id`, by id, at most `limit`. `of_clinician`: only the
    conversations of the clients whose primary clinician is `clinician_id`, and the team-only ones (no
    client) that clinician is a member of."""
    query = Conversation.filter(practice_id=practice_id)
    if of_clinician:
        mine = Subquery(ConversationMember.filter(participant_id=clinician_id).values("conversation_id"))
        query = query.filter(Q(client__primary_clinician_id=clinician_id) | Q(client_id=None, id__in=mine))
    return list(await query.filter(id__gt=after_id).order_by("id").limit(limit))


async def list_member_ids(conversation_id: int) -> list[int]:
    """The conversation's members' ids."""
    return await ids_of(ConversationMember.filter(conversation_id=conversation_id), "participant_id")


async def list_messages_page(conversation_id: int, after_id: int, limit: int) -> list[Message]:
    """The conversation's messages after `after_id`, oldest first, at most `limit`."""
    return list(
        await Message.filter(conversation_id=conversation_id, id__gt=after_id).order_by("id").limit(limit)
    )
