"""Conversations, messages, read state, removal and away (R8–R15, R20).

Every function takes the acting participant and checks, before anything else, that the object belongs to
the actor's practice and that the actor is in the conversation; anything else is a 404, so another
practice's ids are indistinguishable from ids that do not exist. Each write returns the realtime events to
publish after its transaction has committed.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import emoji
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from inbox import outbox, webhooks
from inbox.context import InboxContext
from inbox.errors import Forbidden, Invalid, NotFound
from inbox.ids import is_id
from inbox.models import (
    CLIENT,
    CONTACT,
    TEAM,
    ClientAccess,
    Conversation,
    ConversationMember,
    Message,
    Participant,
    Practice,
)
from inbox.permissions import (
    Party,
    PracticeFlags,
    check_exchange,
    may_enable_client_messaging,
    may_message_directly,
)

MAX_BODY = 5000
MAX_AWAY = 600
MAX_PARTICIPANTS = 50
DEFAULT_AWAY_TEXT = (
    "I'm away at the moment and may not reply right away. Your message will still be delivered to me. "
    "If this is an emergency, call 911 or your local emergency number."
)


@dataclass(frozen=True)
class Event:
    recipients: tuple[int, ...]
    payload: dict[str, Any]


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)


# --- shaping -----------------------------------------------------------------------------------------


def render_body_html(body: str) -> str:
    """R13: emoji codes become emoji; everything the sender typed is escaped, so no markup survives."""
    escaped = html.escape(body, quote=True)
    return emoji.emojize(escaped, language="alias").replace("\r\n", "\n").replace("\n", "<br>")


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def message_json(ctx: InboxContext, msg: Message, *, include_removed_text: bool = False) -> dict[str, Any]:
    removed = None
    body: str | None = None
    if msg.removed_at is not None:
        removed = {"by": msg.removed_by_id, "at": iso(msg.removed_at)}
    if msg.removed_at is None or include_removed_text:
        body = ctx.keyring.decrypt(bytes(msg.body_cipher), f"conversation:{msg.conversation_id}")
    return {
        "id": msg.id,
        "conversation_id": msg.conversation_id,
        "sender_id": msg.sender_id,
        "body": body if msg.removed_at is None else (body if include_removed_text else None),
        "body_html": render_body_html(body) if body is not None and msg.removed_at is None else None,
        "created_at": iso(msg.created_at),
        "removed": removed,
        "client_msg_id": msg.client_msg_id,
    }


def participant_json(p: Participant) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "kind": p.kind,
        "roles": sorted(p.role_set) if p.kind == TEAM else [],
        "away": bool(p.kind == TEAM and p.away_enabled),
    }


def me_json(p: Participant) -> dict[str, Any]:
    data = participant_json(p)
    data["email"] = p.email
    if p.kind == TEAM:
        data["messaging_enabled"] = p.messaging_enabled
        data["can_export"] = p.can_export
        data["totp_enabled"] = p.totp_enabled
    if p.kind == CONTACT:
        data["client_id"] = p.client_id
    return data


def away_json(p: Participant) -> dict[str, Any]:
    return {"enabled": bool(p.away_enabled), "message": p.away_message or DEFAULT_AWAY_TEXT}


def banner_for(people: Sequence[Participant]) -> dict[str, Any] | None:
    """R20: while a team member in a client's conversation is away, the conversation carries a banner."""
    if not any(p.kind != TEAM for p in people):
        return None
    for p in people:
        if p.kind == TEAM and p.away_enabled:
            return {
                "kind": "away",
                "participant_id": p.id,
                "name": p.name,
                "text": p.away_message or DEFAULT_AWAY_TEXT,
            }
    return None


# --- facts for the permission functions ---------------------------------------------------------------


def party_of(p: Participant, clients: dict[int, Participant]) -> Party:
    if p.kind == TEAM:
        return Party(p.id, TEAM, p.role_set, p.messaging_enabled, active=p.active)
    client_id = p.id if p.kind == CLIENT else p.client_id
    client = clients.get(client_id or -1, p)
    return Party(
        p.id,
        p.kind,
        frozenset(),
        p.messaging_enabled,
        p.portal_access,
        client_id,
        client.primary_clinician_id,
    )


@dataclass
class Facts:
    flags: PracticeFlags
    grants: set[tuple[int, int]]
    clients: dict[int, Participant]

    def party(self, p: Participant) -> Party:
        return party_of(p, self.clients)

    def client_parties(self) -> dict[int, Party]:
        return {cid: party_of(c, self.clients) for cid, c in self.clients.items()}


async def load_facts(practice_id: int, people: Iterable[Participant]) -> Facts:
    people = list(people)
    practice = await Practice.get(id=practice_id)
    client_ids = {p.id if p.kind == CLIENT else p.client_id for p in people if p.kind != TEAM}
    client_ids.discard(None)
    clients = {p.id: p for p in people if p.kind == CLIENT}
    missing = [c for c in client_ids if c not in clients]
    if missing:
        for c in await Participant.filter(id__in=missing, practice_id=practice_id):
            clients[c.id] = c
    team_ids = [p.id for p in people if p.kind == TEAM]
    grants: set[tuple[int, int]] = set()
    if client_ids and team_ids:
        rows = await ClientAccess.filter(
            client_id__in=list(client_ids), team_member_id__in=team_ids
        ).values_list("team_member_id", "client_id")
        grants = {(int(t), int(c)) for t, c in rows}
    flags = PracticeFlags(practice.client_messaging_enabled, practice.team_messaging_enabled)
    return Facts(flags, grants, clients)


async def ids_of(query: Any, field: str) -> list[int]:
    """A flat list of integer ids from a queryset (typed, for the callers' sake)."""
    rows: list[Any] = await query.values_list(field, flat=True)
    return [int(r) for r in rows]


def member_key(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in sorted(set(ids)))


# --- conversations -----------------------------------------------------------------------------------


async def _conversation_for(actor: Participant, conversation_id: int) -> Conversation:
    conv = await Conversation.filter(id=conversation_id, practice_id=actor.practice_id).first()
    if (
        conv is None
        or not await ConversationMember.filter(conversation_id=conv.id, participant_id=actor.id).exists()
    ):
        raise NotFound("conversation")
    return conv


async def _members(conversation_id: int) -> list[Participant]:
    ids = await ids_of(ConversationMember.filter(conversation_id=conversation_id), "participant_id")
    return list(await Participant.filter(id__in=list(ids)).order_by("id"))


def _check(
    actor: Participant, others: Sequence[Participant], facts: Facts, prior_writers: Iterable[int] = ()
) -> None:
    refusal = check_exchange(
        facts.party(actor),
        [facts.party(o) for o in others],
        flags=facts.flags,
        grants=facts.grants,
        clients=facts.client_parties(),
        prior_writers=set(prior_writers),
    )
    if refusal is not None:
        raise Forbidden.from_refusal(refusal)


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
    others = list(await Participant.filter(id__in=list(ids), practice_id=actor.practice_id).order_by("id"))
    if len(others) != len(ids):
        raise NotFound("participant")
    key = member_key([actor.id, *ids])
    existing = await Conversation.filter(practice_id=actor.practice_id, member_key=key).first()
    facts = await load_facts(actor.practice_id, [actor, *others])
    if existing is not None:
        writers = await ids_of(
            ConversationMember.filter(conversation_id=existing.id, has_written=True), "participant_id"
        )
        _check(actor, others, facts, writers)
        result = Opened(conversation=existing, created=False)
        if body is not None:
            sent = await send_message(ctx, actor, existing.id, body, ip=ip)
            result.message, result.events = sent.message, sent.events
        return result

    _check(actor, others, facts)
    client_id = next(
        (p.id if p.kind == CLIENT else p.client_id for p in [actor, *others] if p.kind != TEAM), None
    )
    if body is not None:
        body = validate_body(body)
    now = ctx.clock.now()
    try:
        async with in_transaction():
            conv = await Conversation.create(
                practice_id=actor.practice_id, member_key=key, client_id=client_id, created_at=now
            )
            await ConversationMember.bulk_create(
                [
                    ConversationMember(conversation_id=conv.id, participant_id=p.id, last_activity_at=now)
                    for p in [actor, *others]
                ]
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
    people = await _members(conv.id)
    return {
        "id": conv.id,
        "participants": [participant_json(p) for p in people],
        "client_id": conv.client_id,
        "banner": banner_for(people),
        "created_at": iso(conv.created_at),
        "client_messaging_off": await _client_messaging_off(actor, conv.client_id),
    }


async def _client_messaging_off(actor: Participant, client_id: int | None) -> dict[str, Any] | None:
    """For a team member: the conversation's client (or client whose contacts take part) when the client's
    own messaging is off (R4, R10), and whether this team member may turn it on from the thread (R5), so the
    thread can offer "Enable Secure Messaging"."""
    if actor.kind != TEAM or client_id is None:
        return None
    client = await Participant.filter(id=client_id, practice_id=actor.practice_id, kind=CLIENT).first()
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
    query = ConversationMember.filter(participant_id=actor.id)
    if cursor:
        at, cid = _decode_cursor(cursor)
        query = query.filter(Q(last_activity_at__lt=at) | Q(last_activity_at=at, conversation_id__lt=cid))
    rows = list(await query.order_by("-last_activity_at", "-conversation_id").limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    conv_ids = [r.conversation_id for r in rows]
    convs = {c.id: c for c in await Conversation.filter(id__in=conv_ids)}
    all_members = await ConversationMember.filter(conversation_id__in=conv_ids).values_list(
        "conversation_id", "participant_id"
    )
    people = {p.id: p for p in await Participant.filter(id__in=list({pid for _, pid in all_members}))}
    by_conv: dict[int, list[Participant]] = {}
    for cid, pid in all_members:
        by_conv.setdefault(cid, []).append(people[pid])
    last_ids = [c.last_message_id for c in convs.values() if c.last_message_id]
    last_msgs = {m.id: m for m in await Message.filter(id__in=last_ids)}
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
    query = Message.filter(conversation_id=conv.id)
    if before is not None:
        query = query.filter(id__lt=before)
    rows = list(await query.order_by("-id").limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return {
        "items": [message_json(ctx, m) for m in rows],
        "next_before": rows[0].id if more and rows else None,
    }


# --- messages ----------------------------------------------------------------------------------------


def validate_body(body: str) -> str:
    trimmed = body.strip()
    if not trimmed:
        raise Invalid("empty_message", "A message cannot be empty.", field="body", rule="R12")
    if len(trimmed) > MAX_BODY:
        raise Invalid(
            "message_too_long", f"A message holds at most {MAX_BODY:,} characters.", field="body", rule="R12"
        )
    return trimmed


@dataclass
class Sent(Outcome):
    message: Message | None = None
    created: bool = True
    banner: dict[str, Any] | None = None
    data: dict[str, Any] | None = None  # message_json(message), when the sender already has it


async def send_message(
    ctx: InboxContext,
    actor: Participant,
    conversation_id: int,
    body: str,
    client_msg_id: str | None = None,
    *,
    ip: str | None = None,
) -> Sent:
    """Store a message and what it sets in motion; the hot path with its own SQL lives in `inbox.sending`."""
    from inbox import sending  # it builds on this module

    return await sending.send_message(ctx, actor, conversation_id, body, client_msg_id, ip=ip)


async def unread_totals(participant_ids: Sequence[int]) -> dict[int, int]:
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


async def unread_total(participant_id: int) -> int:
    return (await unread_totals([participant_id]))[participant_id]


async def mark_read(
    ctx: InboxContext, actor: Participant, conversation_id: int, up_to_message_id: int
) -> tuple[int, Outcome]:
    """R15: reading a conversation up to a message clears its part of the unread count."""
    conv = await _conversation_for(actor, conversation_id)
    if (
        not is_id(up_to_message_id, big=True)
        or not await Message.filter(id=up_to_message_id, conversation_id=conv.id).exists()
    ):
        raise NotFound("message")
    async with in_transaction():
        member = await ConversationMember.get(conversation_id=conv.id, participant_id=actor.id)
        upto = max(member.last_read_message_id or 0, up_to_message_id)
        remaining = (
            await Message.filter(conversation_id=conv.id, id__gt=upto, removed_at=None)
            .exclude(sender_id=actor.id)
            .count()
        )
        await ConversationMember.filter(id=member.id).update(
            last_read_message_id=upto, unread_count=remaining
        )
        if upto != member.last_read_message_id:
            await webhooks.enqueue_event(
                ctx,
                actor.practice_id,
                "conversation.read",
                {"conversation_id": conv.id, "participant_id": actor.id, "up_to_message_id": upto},
            )
    total = await unread_total(actor.id)
    people = await _members(conv.id)
    events = [
        Event(
            tuple(p.id for p in people),
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
    msg = await Message.filter(id=message_id).first()
    if msg is None:
        raise NotFound("message")
    conv = await _conversation_for(actor, msg.conversation_id)  # 404 unless the actor is in it
    if msg.sender_id != actor.id:
        raise Forbidden("only_sender_can_remove", "Only the sender can remove a message.", rule="R14")
    if msg.removed_at is not None:
        return msg, Outcome()
    now = ctx.clock.now()
    async with in_transaction():
        msg.removed_at = now
        msg.removed_by_id = actor.id
        await msg.save(update_fields=["removed_at", "removed_by_id"])
        unread_members = await ids_of(
            ConversationMember.filter(
                Q(last_read_message_id__lt=msg.id) | Q(last_read_message_id=None),
                conversation_id=conv.id,
                unread_count__gt=0,
            ).exclude(participant_id=actor.id),
            "participant_id",
        )
        await ConversationMember.filter(
            conversation_id=conv.id, participant_id__in=list(unread_members)
        ).update(unread_count=F("unread_count") - 1)
        await outbox.cancel_for_message(ctx, msg.id)
        await webhooks.enqueue_event(
            ctx,
            actor.practice_id,
            "message.removed",
            {"conversation_id": conv.id, "message_id": msg.id, "removed_by": actor.id},
        )
    people = await _members(conv.id)
    events = [
        Event(
            tuple(p.id for p in people),
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
    await actor.save(update_fields=["away_enabled", "away_message"])
    # Everyone who shares a conversation with this team member sees the change live.
    conv_ids = await ids_of(ConversationMember.filter(participant_id=actor.id), "conversation_id")
    peer_ids = set(
        await ids_of(ConversationMember.filter(conversation_id__in=list(conv_ids)), "participant_id")
    ) | {actor.id}
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
    recent_convs = await ids_of(
        ConversationMember.filter(participant_id=actor.id).order_by("-last_activity_at").limit(50),
        "conversation_id",
    )
    pairs = (
        await ConversationMember.filter(conversation_id__in=list(recent_convs))
        .exclude(participant_id=actor.id)
        .values_list("conversation_id", "participant_id")
    )
    order = {cid: i for i, cid in enumerate(recent_convs)}
    recent_ids: list[int] = []
    for _, pid in sorted(pairs, key=lambda pair: order[pair[0]]):
        if pid not in recent_ids:
            recent_ids.append(pid)

    query = Participant.filter(practice_id=actor.practice_id).exclude(id=actor.id)
    if actor.kind != TEAM:
        # A client or contact can only ever write to team members (R8, R10).
        query = query.filter(kind=TEAM)
    needle = (q or "").strip()[:100]
    if needle:
        query = query.filter(Q(name__icontains=needle) | Q(email__icontains=needle))
    matches = list(await query.order_by("name").limit(200))
    recent = [p for p in await Participant.filter(id__in=recent_ids)]
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
