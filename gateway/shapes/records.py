"""Records (docs/api.md §3): transcripts (R21), chart notes (R22), exports (R23), the audit log (R24)."""

from __future__ import annotations

from typing import Annotated, Any

from gateway.shapes.common import Named
from gateway.shapes.messaging import Participant
from gateway.typed import Answer, Body, Id, ItemBigId, Time, absent, items, limit, one_of
from inbox.exports import EXPIRED, SCOPES
from inbox.records import MAX_NOTE_MESSAGES

# --- requests ---------------------------------------------------------------------------------------------


class NewChartNote(Body):
    message_ids: Annotated[list[ItemBigId], items(MAX_NOTE_MESSAGES), limit(minItems=1)]


class NewExport(Body):
    scope: Annotated[str, one_of(SCOPES)]  # else 422 invalid_scope
    clinician_id: Id | None = None
    require_password: bool = absent()  # absent: true


# --- answers ----------------------------------------------------------------------------------------------


class TranscriptConversation(Answer):
    id: int
    participants: list[Participant]
    heading: str  # its participants' names, the heading of its group on the page and in chart notes


class TranscriptRemoved(Answer):
    by: int | None
    by_name: str | None
    at: Time


class TranscriptItem(Answer):
    id: int
    conversation_id: int
    sender_id: int
    sender_name: str | None
    body: str
    created_at: Time
    removed: TranscriptRemoved | None


class Transcript(Answer):
    client: Named
    participants: list[int]
    time_zone: str  # the practice's, in which the page and chart notes write times
    conversations: list[TranscriptConversation]
    items: list[TranscriptItem]
    next_cursor: str | None


class ChartNote(Answer):
    id: int
    client_id: int
    author_id: int
    author_name: str | None
    text: str
    message_ids: list[int]
    created_at: Time


class ChartNotes(Answer):
    items: list[ChartNote]
    next_cursor: str | None


class Export(Answer):
    id: int
    status: Annotated[str, one_of(("pending", "ready", "failed", EXPIRED))]
    scope: Annotated[str, one_of(SCOPES)]
    clinician_id: int | None
    require_password: bool
    requested_by: int
    created_at: Time
    finished_at: Time | None
    error: str | None
    download_url: str | None
    expires_at: Time | None
    password: str = absent()  # for the person who asked for it, once ready


class Exports(Answer):
    items: list[Export]


class AuditEvent(Answer):
    seq: int
    at: Time
    actor_id: int | None
    actor_kind: str
    action: str
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any] | None
    ip: str | None
    prev_hash: str
    hash: str


class AuditPage(Answer):
    items: list[AuditEvent]
    next_cursor: str | None
