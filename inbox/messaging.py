"""Conversations, messages, read state, removal and away (R8–R15, R20).

Every function takes the acting participant and checks, before anything else, that the object belongs to
the actor's practice and that the actor is in the conversation; anything else is a 404, so another
practice's ids are indistinguishable from ids that do not exist. Each write returns the realtime events to
publish after its transaction has committed.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from inbox import db, outbox, sending, webhooks
from inbox.context import InboxContext
from inbox.errors import Forbidden, Invalid, NotFound
from inbox.exchange import (  # noqa: F401  (the names callers know from here)
    DEFAULT_AWAY_TEXT,
    MAX_AWAY,
    MAX_BODY,
    MAX_PARTICIPANTS,
    Event,
    Facts,
    Outcome,
    Sent,
    away_json,
    banner_for,
    check,
    iso,
    me_json,
    message_json,
    participant_json,
    party_of,
    render_body_html,
    validate_body,
)
from inbox.ids import is_id
from inbox.models import CLIENT, CONTACT, TEAM, Conversation, Message, Participant
from inbox.permissions import PracticeFlags, may_enable_client_messaging, may_message_directly
from inbox.store import conversations, messages, practices
from inbox.store import people as people_store
from inbox.store.orm import ids_of  # noqa: F401  (for callers in flight; new code imports it from there)


async def load_facts(practice_id: int, people: Iterable[Participant]) -> Facts:
    everyone = list(people)
    practice = await practices.get_practice(practice_id)
    client_ids = {p.id if p.kind == CLIENT else p.client_id for p in everyone if p.kind != TEAM}
    client_ids.discard(None)
    clients = {p.id: p for p in everyone if p.kind == CLIENT}
    missing = [c for c in client_ids if c is not None and c not in clients]
    if missing:
        for c in await people_store.get_participants(missing, practice_id):
            clients[c.id] = c
    team_ids = [p.id for p in everyone if p.kind == TEAM]
    grants: set[tuple[int, int]] = set()
    if client_ids and team_ids:
        grants = await people_store.get_access_grants(client_ids, team_ids)
    flags = PracticeFlags(practice.client_messaging_enabled, practice.team_messaging_enabled)
    return Facts(flags, grants, clients)


def member_key(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in sorted(set(ids)))


# --- conversations -----------------------------------------------------------------------------------


async def _conversation_for(actor: Participant, conversation_id: int) -> Conversation:
    conv = await conversations.get_conversation_of_member(actor.practice_id, conversation_id, actor.id)
    if conv is None:
        raise NotFound("conversation")
    return conv


@dataclass
class Opened(Outcome):
    conversation: Conversation | None = None
    created: bool = False
    message: Message | None = None


async def open_conversation(
    ctx: InboxContext,
    actor: Participant,
    participant_ids: Sequence[int],
    body: str | None = None,
    *,
    ip: str | None = None,
) -> Opened:
    """Create the exchange for this set of participants, or return the one that exists (R11). `ip`: the
    sender's address, for the audit row of a first message."""
    ids = {int(i) for i in participant_ids} - {actor.id}
    if not ids:
        raise Invalid(
            "no_recipients",
            "participant_ids must name at least one other participant.",
            field="participant_ids",
        )
    if len(ids) > MAX_PARTICIPANTS:
        raise Invalid(
            "too_many_participants",
            f"A conversation holds at most {MAX_PARTICIPANTS} people.",
            field="participant_ids",
        )
    if not all(is_id(i) for i in ids):
        raise NotFound("participant")
    others = await people_store.get_participants(ids, actor.practice_id)
    if len(others) != len(ids):
        raise NotFound("participant")
    key = member_key([actor.id, *ids])
    existing = await conversations.find_by_member_key(actor.practice_id, key)
    facts = await load_facts(actor.practice_id, [actor, *others])
    if existing is not None:
        writers = await conversations.get_writer_ids(existing.id)
        check(actor, others, facts, writers)
        result = Opened(conversation=existing, created=False)
        if body is not None:
            sent = await send_message(ctx, actor, existing.id, body, ip=ip)
            result.message, result.events = sent.message, sent.events
        return result

    check(actor, others, facts)
    client_id = next(
        (p.id if p.kind == CLIENT else p.client_id for p in [actor, *others] if p.kind != TEAM), None
    )
    if body is not None:
        body = validate_body(body)
    now = ctx.clock.now()
    try:
        conv = await conversations.add_conversation(
            actor.practice_id, key, client_id, [p.id for p in [actor, *others]], now
        )
    except IntegrityError:
        # Someone opened the same exchange a moment ago: it is the same conversation (R11).
        return await open_conversation(ctx, actor, participant_ids, body, ip=ip)
    result = Opened(conversation=conv, created=True)
    if body is not None:
        sent = await send_message(ctx, actor, conv.id, body, ip=ip)
        result.message, result.events = sent.message, sent.events
    return result


async def conversation_detail(actor: Participant, conversation_id: int) -> dict[str, Any]:
    conv = await _conversation_for(actor, conversation_id)
    members = await conversations.get_members(conv.id)
    return {
        "id": conv.id,
        "participants": [participant_json(p) for p in members],
        "client_id": conv.client_id,
        "banner": banner_for(members),
        "created_at": iso(conv.created_at),
        "client_messaging_off": await _client_messaging_off(actor, conv.client_id),
    }


async def _client_messaging_off(actor: Participant, client_id: int | None) -> dict[str, Any] | None:
    """For a team member: the conversation's client (or client whose contacts take part) when the client's
    own messaging is off (R4, R10), and whether this team member may turn it on from the thread (R5), so the
    thread can offer "Enable Secure Messaging"."""
    if actor.kind != TEAM or client_id is None:
        return None
    client = await people_store.get_client(actor.practice_id, client_id)
    if client is None or client.messaging_enabled:
        return None
    facts = await load_facts(actor.practice_id, [actor, client])
    may = may_enable_client_messaging(
        facts.party(actor), client.id, client.primary_clinician_id, facts.grants
    )
    return {"client_id": client.id, "name": client.name, "can_enable": may}


def _encode_cursor(at: datetime, conv_id: int) -> str:
    raw = f"{at.timestamp():.6f}:{conv_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, cid = raw.split(":")
        from datetime import UTC

        at, conv_id = datetime.fromtimestamp(float(ts), UTC), int(cid)
    except (ValueError, UnicodeDecodeError, OverflowError, OSError):
        at, conv_id = None, 0
    if at is None or not is_id(conv_id):
        raise Invalid("invalid_cursor", "cursor is not one this server gave out.", field="cursor")
    return at, conv_id


async def list_conversations(
    ctx: InboxContext, actor: Participant, cursor: str | None = None, limit: int = 30
) -> dict[str, Any]:
    after = _decode_cursor(cursor) if cursor else None
    rows = await conversations.list_memberships_page(actor.id, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    conv_ids = [r.conversation_id for r in rows]
    convs = await conversations.get_conversations(conv_ids)
    all_members = await conversations.get_member_pairs(conv_ids)
    found = {p.id: p for p in await people_store.get_participants({pid for _, pid in all_members})}
    by_conv: dict[int, list[Participant]] = {}
    for cid, pid in all_members:
        by_conv.setdefault(cid, []).append(found[pid])
    last_ids = [c.last_message_id for c in convs.values() if c.last_message_id]
    last_msgs = await messages.get_messages(last_ids)
    items = []
    for r in rows:
        conv = convs[r.conversation_id]
        members = sorted(by_conv.get(conv.id, []), key=lambda p: p.id)
        last = last_msgs.get(conv.last_message_id or -1)
        items.append(
            {
                "id": conv.id,
                "participants": [participant_json(p) for p in members],
                "last_message": message_json(ctx, last) if last else None,
                "unread_count": r.unread_count,
                "last_activity_at": iso(r.last_activity_at),
                "banner": banner_for(members),
            }
        )
    next_cursor = (
        _encode_cursor(rows[-1].last_activity_at, rows[-1].conversation_id) if more and rows else None
    )
    return {"items": items, "next_cursor": next_cursor}


async def list_messages(
    ctx: InboxContext, actor: Participant, conversation_id: int, before: int | None = None, limit: int = 50
) -> dict[str, Any]:
    conv = await _conversation_for(actor, conversation_id)
    rows = await messages.list_messages_page(conv.id, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return {
        "items": [message_json(ctx, m) for m in rows],
        "next_before": rows[0].id if more and rows else None,
    }


# --- messages ----------------------------------------------------------------------------------------


async def send_message(
    ctx: InboxContext,
    actor: Participant,
    conversation_id: int,
    body: str,
    client_msg_id: str | None = None,
    *,
    ip: str | None = None,
) -> Sent:
    """Store a message and what it sets in motion (the send path: `inbox.sending`)."""
    return await sending.send_message(ctx, actor, conversation_id, body, client_msg_id, ip=ip)


async def unread_totals(participant_ids: Sequence[int]) -> dict[int, int]:
    return await conversations.get_unread_totals(participant_ids)


async def unread_total(participant_id: int) -> int:
    return (await unread_totals([participant_id]))[participant_id]


async def mark_read(
    ctx: InboxContext, actor: Participant, conversation_id: int, up_to_message_id: int
) -> tuple[int, Outcome]:
    """R15: reading a conversation up to a message clears its part of the unread count."""
    conv = await _conversation_for(actor, conversation_id)
    if not is_id(up_to_message_id, big=True) or not await messages.is_in_conversation(
        up_to_message_id, conv.id
    ):
        raise NotFound("message")
    async with db.transaction():
        member = await conversations.get_member(conv.id, actor.id)
        upto = max(member.last_read_message_id or 0, up_to_message_id)
        remaining = await messages.count_unread(conv.id, upto, actor.id)
        await conversations.set_read(member.id, upto, remaining)
        if upto != member.last_read_message_id:
            await webhooks.enqueue_event(
                ctx,
                actor.practice_id,
                "conversation.read",
                {"conversation_id": conv.id, "participant_id": actor.id, "up_to_message_id": upto},
            )
    total = await unread_total(actor.id)
    members = await conversations.get_members(conv.id)
    events = [
        Event(
            tuple(p.id for p in members),
            {
                "type": "conversation.read",
                "conversation_id": conv.id,
                "participant_id": actor.id,
                "up_to_message_id": upto,
            },
        ),
        Event((actor.id,), {"type": "unread", "unread_total": total}),
    ]
    return total, Outcome(events)


async def remove_message(ctx: InboxContext, actor: Participant, message_id: int) -> tuple[Message, Outcome]:
    """R14: the sender removes a message; everyone then sees that it was removed, not its text.

    The ciphertext stays, so transcripts and exports still hold the text, marked as removed. Pending
    notifications about it become moot: the dispatcher checks `removed_at` before it sends.
    """
    msg = await messages.get_message(message_id)
    if msg is None:
        raise NotFound("message")
    conv = await _conversation_for(actor, msg.conversation_id)  # 404 unless the actor is in it
    if msg.sender_id != actor.id:
        raise Forbidden("only_sender_can_remove", "Only the sender can remove a message.", rule="R14")
    if msg.removed_at is not None:
        return msg, Outcome()
    now = ctx.clock.now()
    async with db.transaction():
        await messages.set_removed(msg, actor.id, now)
        unread_members = await conversations.get_unread_member_ids(conv.id, msg.id, actor.id)
        await conversations.take_one_unread(conv.id, unread_members)
        await outbox.cancel_for_message(ctx, msg.id)
        await webhooks.enqueue_event(
            ctx,
            actor.practice_id,
            "message.removed",
            {"conversation_id": conv.id, "message_id": msg.id, "removed_by": actor.id},
        )
    members = await conversations.get_members(conv.id)
    events = [
        Event(
            tuple(p.id for p in members),
            {"type": "message.removed", "conversation_id": conv.id, "message_id": msg.id},
        )
    ]
    totals = await unread_totals(list(unread_members))
    events += [Event((pid,), {"type": "unread", "unread_total": t}) for pid, t in totals.items()]
    return msg, Outcome(events)


# --- away (R20) --------------------------------------------------------------------------------------


async def set_away(ctx: InboxContext, actor: Participant, enabled: bool, message: str | None) -> Outcome:
    if actor.kind != TEAM:
        raise Forbidden("team_only", "Only team members can set an away message.", rule="R20")
    if message is not None:
        message = message.strip()
        if len(message) > MAX_AWAY:
            raise Invalid(
                "away_message_too_long",
                f"An away message holds at most {MAX_AWAY} characters.",
                field="message",
                rule="R20",
            )
        actor.away_message = message or None
    actor.away_enabled = enabled
    await people_store.save_away(actor)
    # Everyone who shares a conversation with this team member sees the change live.
    conv_ids = await conversations.get_conversation_ids(actor.id)
    peer_ids = set(await conversations.get_member_ids(conv_ids)) | {actor.id}
    text = actor.away_message or DEFAULT_AWAY_TEXT
    return Outcome(
        [
            Event(
                tuple(sorted(peer_ids)),
                {
                    "type": "away",
                    "participant_id": actor.id,
                    "enabled": enabled,
                    "text": text if enabled else None,
                },
            )
        ]
    )


# --- the recipient picker ----------------------------------------------------------------------------


async def recipients(
    actor: Participant, q: str | None, limit: int = 20, *, include_disabled: bool = False
) -> list[dict[str, Any]]:
    """People the actor may message: recently messaged first, then matches for `q`.

    With `q`, a name whose first word starts with it comes first, then one with any other word starting
    with it, then the rest (a part of a name or an email address); recency only orders people within a
    rank, so "morg" lists Morgan Diaz before a recently messaged Alex Morgan. For a team member each row
    also carries what tells two people apart: the email address, and for a contact whose contact it is.

    With `include_disabled`, clients whose own messaging is off but whom the actor could message once it
    is on are listed too, with `messaging_enabled: false` and `can_enable` (owners and managers, and a
    clinician or supervisor with access to the client, may turn it on: R4, R5), so the picker can offer
    "Enable Secure Messaging".
    """
    recent_convs = await conversations.get_recent_conversation_ids(actor.id, 50)
    pairs = await conversations.get_member_pairs(recent_convs, exclude_participant_id=actor.id)
    order = {cid: i for i, cid in enumerate(recent_convs)}
    recent_ids: list[int] = []
    for _, pid in sorted(pairs, key=lambda pair: order[pair[0]]):
        if pid not in recent_ids:
            recent_ids.append(pid)

    needle = (q or "").strip()[:100]
    # A client or contact can only ever write to team members (R8, R10).
    matches = await people_store.search_people(
        actor.practice_id, actor.id, team_only=actor.kind != TEAM, needle=needle, limit=200
    )
    recent = await people_store.get_participants(recent_ids)
    recent.sort(key=lambda p: recent_ids.index(p.id))
    if needle:
        low = needle.lower()
        recent = [p for p in recent if low in p.name.lower() or low in p.email.lower()]

    candidates: list[tuple[Participant, bool]] = [(p, True) for p in recent]
    seen = {p.id for p in recent}
    candidates += [(p, False) for p in matches if p.id not in seen]
    if needle:
        # A stable sort: within a rank, the recent ones stay first, then by name.
        candidates.sort(key=lambda pair: match_rank(pair[0].name, needle))
    facts = await load_facts(actor.practice_id, [actor, *[p for p, _ in candidates]])
    me = facts.party(actor)
    out = []
    for p, is_recent in candidates:
        target = facts.party(p)
        allowed = may_message_directly(
            me, target, flags=facts.flags, grants=facts.grants, clients=facts.client_parties()
        )
        enabled = True
        if not allowed and include_disabled and p.kind == CLIENT and not p.messaging_enabled:
            # Would it work once the client's own messaging is on? Then offer to turn it on.
            turned_on = dataclasses.replace(target, messaging_enabled=True)
            clients = facts.client_parties() | {p.id: turned_on}
            allowed = may_message_directly(
                me, turned_on, flags=facts.flags, grants=facts.grants, clients=clients
            )
            enabled = False
        if allowed:
            item = participant_json(p)
            item["recent"] = is_recent
            if actor.kind == TEAM:
                item["email"] = p.email
                owner = facts.clients.get(p.client_id or -1) if p.kind == CONTACT else None
                if owner is not None:
                    item["contact_of"] = {"id": owner.id, "name": owner.name}
            if include_disabled:
                item["messaging_enabled"] = enabled
                item["can_enable"] = not enabled and may_enable_client_messaging(
                    me, p.id, p.primary_clinician_id, facts.grants
                )
            out.append(item)
        if len(out) >= limit:
            break
    return out


def match_rank(name: str, needle: str) -> int:
    """0: the first word of the name starts with `needle`; 1: another word does; 2: anything else."""
    low = needle.lower()
    # A title ("Dr.") is not a first name: "sam" finds "Dr. Sam Rivera" by her first name.
    words = [w for w in name.lower().split() if not w.endswith(".")] or name.lower().split()
    if words and words[0].startswith(low) or name.lower().startswith(low):
        return 0
    if any(w.startswith(low) for w in words[1:]):
        return 1
    return 2
