"""A client's records: transcripts of the client's conversations (R21) and chart notes (R22).

Who may read them (R21, "team members with access to the client's profile"):
- the client's primary clinician, and any team member with a ClientAccess grant to the client (a supervisor,
  a biller, a second clinician: the grant is what gives access to the profile);
- the account owner, who holds every client's file (and can export all of it anyway, R23).
Billers, schedulers and practice managers may *message* any client (R6), but messaging a client is not access
to the client's file: without a grant they do not read other people's conversations with that client. That is
the narrower, minimum-necessary reading of the guide; the owner can grant access to anyone who needs it.

A transcript holds removed messages with their text, marked as removed (R14): it is the record.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from inbox import timezones
from inbox.context import InboxContext
from inbox.errors import Forbidden, Invalid, NotFound
from inbox.exchange import iso, participant_json
from inbox.ids import id_from_text, is_id
from inbox.models import CLIENT, CONTACT, TEAM, ChartNote, Message, Participant
from inbox.permissions import Refusal
from inbox.store import conversations, people, practices
from inbox.store import records as records_store

MAX_FILTER_IDS = 50
MAX_NOTE_MESSAGES = 200


def body_context(conversation_id: int) -> str:
    """The associated data of a message body (inbox.messaging encrypts under the same string)."""
    return f"conversation:{conversation_id}"


def chart_note_context(client_id: int) -> str:
    return f"chart-note:{client_id}"


def message_line(at: datetime, name: str, text: str, tz: ZoneInfo) -> str:
    """A message in a chart note or an export: "[2026-01-05 14:05 EST] Name: text", in the practice's zone."""
    return f"[{timezones.stamp(at, tz)}] {name}: {text}"


def people_line(people: Iterable[Participant]) -> str:
    """A conversation's participants as a heading: the client, then contacts, then the team, each by name."""
    order = {CLIENT: 0, CONTACT: 1, TEAM: 2}
    ranked = sorted(people, key=lambda p: (order.get(p.kind, 3), p.name.lower(), p.id))
    return ", ".join(p.name for p in ranked)


async def practice_zone(practice_id: int) -> str:
    practice = await practices.get_practice_or_none(practice_id)
    return timezones.zone_name(practice.time_zone if practice else None)


# --- access ------------------------------------------------------------------------------------------


def records_refusal(
    member_id: int,
    roles: Collection[str],
    client_id: int,
    primary_clinician_id: int | None,
    grants: Collection[tuple[int, int]],
) -> Refusal | None:
    """R21 as a pure function: may this team member read the client's transcripts and chart notes?"""
    if "account_owner" in roles:
        return None
    if member_id == primary_clinician_id or (member_id, client_id) in grants:
        return None
    return Refusal(
        "no_client_access",
        "R21",
        "Only team members with access to this client's profile can read the client's records.",
    )


async def client_for_records(actor: Participant, client_id: int) -> Participant:
    """The client, when the actor may read its records: 404 outside the practice, 403 without access."""
    if actor.kind != TEAM:
        raise Forbidden("team_only", "Only team members can read a client's records.", rule="R21")
    client = await people.get_client(actor.practice_id, client_id)
    if client is None:
        raise NotFound("client")
    grants: set[tuple[int, int]] = set()
    if await records_store.get_access_granted(actor.id, client.id):
        grants.add((actor.id, client.id))
    refusal = records_refusal(actor.id, actor.role_set, client.id, client.primary_clinician_id, grants)
    if refusal is not None:
        raise Forbidden.from_refusal(refusal)
    return client


# --- transcripts -------------------------------------------------------------------------------------


def parse_id_list(raw: str | None, field: str = "participants") -> list[int]:
    if raw is None or not raw.strip():
        return []
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if len(parts) > MAX_FILTER_IDS or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
        raise Invalid(
            "invalid_query",
            f"{field} must be up to {MAX_FILTER_IDS} participant ids separated by commas.",
            field=field,
        )
    return sorted({int(p) for p in parts})


def parse_message_cursor(raw: str | None, *, big: bool = True) -> int:
    """A page cursor: the id of the last row of the previous page (a message's, unless big=False)."""
    if not raw:
        return 0
    value = id_from_text(raw, big=big)
    if value is None:
        raise Invalid("invalid_cursor", "cursor is not one this server gave out.", field="cursor")
    return value


async def _members_by_conversation(conv_ids: Iterable[int]) -> dict[int, list[Participant]]:
    pairs = await conversations.get_member_pairs(list(conv_ids))
    by_id = {p.id: p for p in await records_store.list_people(list({pid for _, pid in pairs}))}
    out: dict[int, list[Participant]] = {}
    for cid, pid in pairs:
        out.setdefault(cid, []).append(by_id[pid])
    for members in out.values():
        members.sort(key=lambda p: p.id)
    return out


def transcript_item(ctx: InboxContext, msg: Message, names: dict[int, str]) -> dict[str, Any]:
    removed = None
    if msg.removed_at is not None:
        by = msg.removed_by_id
        removed = {"by": by, "by_name": names.get(by or -1), "at": iso(msg.removed_at)}
    return {
        "id": msg.id,
        "conversation_id": msg.conversation_id,
        "sender_id": msg.sender_id,
        "sender_name": names.get(msg.sender_id),
        "body": ctx.keyring.decrypt(bytes(msg.body_cipher), body_context(msg.conversation_id)),
        "created_at": iso(msg.created_at),
        "removed": removed,
    }


async def transcript(
    ctx: InboxContext,
    actor: Participant,
    client_id: int,
    participant_ids: list[int],
    after_id: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    """Every message of the client's conversations whose participants include all of `participant_ids`
    (no filter: all of the client's conversations), oldest first, across conversations, paged by id."""
    client = await client_for_records(actor, client_id)
    conv_ids = await records_store.list_client_conversation_ids(actor.practice_id, client.id, by_id=True)
    members = await _members_by_conversation(conv_ids)
    wanted = set(participant_ids)
    chosen = [cid for cid in conv_ids if wanted <= {p.id for p in members.get(cid, [])}]
    names = {p.id: p.name for cid in chosen for p in members.get(cid, [])}
    rows: list[Message] = []
    if chosen:
        rows = await records_store.list_messages_page(chosen, after_id, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "client": {"id": client.id, "name": client.name},
        "participants": participant_ids,
        "time_zone": await practice_zone(actor.practice_id),
        "conversations": [
            {
                "id": cid,
                "participants": [participant_json(p) for p in members.get(cid, [])],
                "heading": people_line(members.get(cid, [])),
            }
            for cid in chosen
        ],
        "items": [transcript_item(ctx, m, names) for m in rows],
        "next_cursor": str(rows[-1].id) if more and rows else None,
    }


# --- chart notes -------------------------------------------------------------------------------------


def chart_note_json(ctx: InboxContext, note: ChartNote, author_name: str | None) -> dict[str, Any]:
    return {
        "id": note.id,
        "client_id": note.client_id,
        "author_id": note.author_id,
        "author_name": author_name,
        "text": ctx.keyring.decrypt(bytes(note.text_cipher), chart_note_context(note.client_id)),
        "message_ids": note.message_ids,
        "created_at": iso(note.created_at),
    }


async def create_chart_note(
    ctx: InboxContext, actor: Participant, client_id: int, message_ids: list[int]
) -> dict[str, Any]:
    """R22: the chosen messages of the client's transcript, grouped by conversation: each group starts with
    its participants ("Conversation: Alex Morgan, Dr. Sam Rivera (times in America/New_York)", so a note
    says who a message was written to), then "[YYYY-MM-DD HH:MM EST] Name: text" lines in the order they
    were sent; groups in the order of their first chosen message. A message of any other conversation is
    refused, and so is a removed message: it was removed because it should not have been sent here, so it
    does not go into the client's chart."""
    client = await client_for_records(actor, client_id)
    ids = sorted(set(message_ids))
    if not all(is_id(i, big=True) for i in ids):
        raise Invalid("invalid_field", "message_ids must be message ids.", field="message_ids")
    if not ids:
        raise Invalid("no_messages", "message_ids must name at least one message.", field="message_ids")
    if len(ids) > MAX_NOTE_MESSAGES:
        raise Invalid(
            "too_many_messages",
            f"A chart note holds at most {MAX_NOTE_MESSAGES} messages.",
            field="message_ids",
        )
    conv_ids = await records_store.list_client_conversation_ids(actor.practice_id, client.id)
    msgs = await records_store.list_messages_of(ids, conv_ids)
    found = {m.id for m in msgs}
    missing = [i for i in ids if i not in found]
    if missing:
        raise Invalid(
            "message_not_in_client_record",
            "Only messages of this client's conversations can go into the client's chart note.",
            field="message_ids",
            message_id=missing[0],
        )
    removed = [m.id for m in msgs if m.removed_at is not None]
    if removed:
        raise Invalid(
            "removed_message",
            "A removed message cannot be copied into a chart note.",
            field="message_ids",
            message_id=removed[0],
        )
    members = await _members_by_conversation({m.conversation_id for m in msgs})
    names = {p.id: p.name for people in members.values() for p in people}
    tz_name = await practice_zone(actor.practice_id)
    tz = timezones.zone(tz_name)
    groups: dict[int, list[str]] = {}  # by conversation, in the order of its first chosen message
    for m in msgs:
        lines = groups.setdefault(
            m.conversation_id,
            [f"Conversation: {people_line(members.get(m.conversation_id, []))} (times in {tz_name})"],
        )
        text = ctx.keyring.decrypt(bytes(m.body_cipher), body_context(m.conversation_id))
        lines.append(message_line(m.created_at, names.get(m.sender_id, "Unknown"), text, tz))
    text = "\n\n".join("\n".join(lines) for lines in groups.values())
    note = await records_store.add_chart_note(
        client.id,
        actor.id,
        ctx.keyring.encrypt(text, chart_note_context(client.id)),
        [m.id for m in msgs],
        ctx.clock.now(),
    )
    return chart_note_json(ctx, note, actor.name)


async def list_chart_notes(
    ctx: InboxContext, actor: Participant, client_id: int, before_id: int = 0, limit: int = 50
) -> dict[str, Any]:
    """The client's chart notes made from messages, newest first, paged by id."""
    client = await client_for_records(actor, client_id)
    rows = await records_store.list_chart_notes(client.id, before_id, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    authors = {p.id: p.name for p in await records_store.list_people({r.author_id for r in rows})}
    return {
        "items": [chart_note_json(ctx, r, authors.get(r.author_id)) for r in rows],
        "next_cursor": str(rows[-1].id) if more and rows else None,
    }


# --- for the records page ----------------------------------------------------------------------------


async def clients_with_record_access(actor: Participant) -> list[Participant]:
    """The clients whose records this team member may read (R21), by name: every client for the account
    owner; otherwise the clients the member is primary clinician of or has been granted access to."""
    if actor.kind != TEAM:
        return []
    of_member = None if "account_owner" in actor.role_set else actor.id
    return await records_store.list_record_clients(actor.practice_id, 1000, of_member=of_member)


async def record_participants(actor: Participant, client_id: int) -> tuple[Participant, list[Participant]]:
    """The client (access checked as for its transcripts) and everyone who appears in its conversations:
    the client, then its contacts, then team members, each group by name. No message is read here."""
    client = await client_for_records(actor, client_id)
    conv_ids = await records_store.list_client_conversation_ids(actor.practice_id, client.id)
    people_ids = await conversations.get_member_ids(conv_ids)
    everyone = await records_store.list_people(set(people_ids) | {client.id})
    order = {CLIENT: 0, "contact": 1, TEAM: 2}
    everyone.sort(key=lambda p: (order.get(p.kind, 3), p.name.lower(), p.id))
    return client, everyone
