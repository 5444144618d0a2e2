"""What the messaging functions and the send path (`inbox.sending`) share: the limits, the events a write
returns, the JSON shapes of messages and people, the away banner (R20), a message body's rules (R12, R13)
and the permission check over facts already loaded (R1–R10, `inbox.permissions`).

It queries nothing: `inbox.messaging` and `inbox.sending` load what it needs through `inbox.store`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import emoji

from inbox.context import InboxContext
from inbox.errors import Forbidden, Invalid
from inbox.models import CLIENT, CONTACT, TEAM, Message, Participant
from inbox.permissions import Party, PracticeFlags, Refusal, check_exchange

MAX_BODY = 5000
MAX_AWAY = 600
MAX_PARTICIPANTS = 50
DEFAULT_AWAY_TEXT = (
    "I'm away at the moment and may not reply right away. Your message will still be delivered to me. "
    "If this is an emergency, call 911 or your local emergency number."
)


class Person(Protocol):
    """What the checks (R1–R10, R26) and the away banner (R20) read of a person: a `Participant`, or the
    send's lighter `inbox.store.messages.Member`."""

    @property
    def id(self) -> int: ...
    @property
    def practice_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def role_set(self) -> frozenset[str]: ...
    @property
    def messaging_enabled(self) -> bool: ...
    @property
    def portal_access(self) -> bool: ...
    @property
    def active(self) -> bool: ...
    @property
    def client_id(self) -> int | None: ...
    @property
    def primary_clinician_id(self) -> int | None: ...
    @property
    def away_enabled(self) -> bool: ...
    @property
    def away_message(self) -> str | None: ...


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


def banner_for(people: Sequence[Person]) -> dict[str, Any] | None:
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


def party_of(p: Person, clients: Mapping[int, Person]) -> Party:
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
    clients: Mapping[int, Person]

    def party(self, p: Person) -> Party:
        return party_of(p, self.clients)

    def client_parties(self) -> dict[int, Party]:
        return {cid: party_of(c, self.clients) for cid, c in self.clients.items()}


def refusal_of(
    actor: Person, others: Sequence[Person], facts: Facts, prior_writers: Iterable[int] = ()
) -> Refusal | None:
    """Why `actor` may not write to `others` now (`check_exchange` on the loaded facts), or None."""
    return check_exchange(
        facts.party(actor),
        [facts.party(o) for o in others],
        flags=facts.flags,
        grants=facts.grants,
        clients=facts.client_parties(),
        prior_writers=set(prior_writers),
    )


def check(actor: Person, others: Sequence[Person], facts: Facts, prior_writers: Iterable[int] = ()) -> None:
    refusal = refusal_of(actor, others, facts, prior_writers)
    if refusal is not None:
        raise Forbidden.from_refusal(refusal)


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
