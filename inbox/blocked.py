"""Why a conversation cannot be written in right now, said before anyone types, and to whom that changes.

The check is the one sending makes (`inbox.permissions.check_exchange`: R1, R3, R4, R8, R10, R26), asked
ahead of time; a refusal about one person (messaging off for them, a deactivated account) names them. The
portal says it in a client's words ("ask your practice", inbox.portal); the team's thread and picker say
who can turn it on. When a switch behind it changes (the practice's messaging, a team member's, a client's,
a deactivation), `messaging.changed` goes to the people whose open threads it may concern (docs/api.md §4),
and their pages read the conversation again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inbox.exchange import refusal_of
from inbox.messaging import load_facts
from inbox.models import TEAM, Participant
from inbox.permissions import Refusal, participation_refusal
from inbox.store import conversations, practices
from inbox.store import visibility as visibility_store

MANAGERS_CAN = "The account owner or a practice manager can turn it on in Settings."
MAX_PICKER_NOTICES = 5


@dataclass(frozen=True)
class Blocked:
    refusal: Refusal
    who: Participant | None  # the person it is about; None: the practice, or the exchange as a whole


async def why_blocked(person: Participant, conversation_id: int, people: list[Participant]) -> Blocked | None:
    """Why `person` cannot write in this conversation now (with `people` its participants), or None."""
    others = [p for p in people if p.id != person.id]
    facts = await load_facts(person.practice_id, [person, *others])
    writers = await conversations.get_writer_ids(conversation_id)
    refusal = refusal_of(person, others, facts, writers)
    if refusal is None:
        return None
    if refusal.code in ("team_messaging_off", "client_messaging_off"):
        return Blocked(refusal, None)
    clients = facts.client_parties()
    for p in [person, *others]:
        party = facts.party(p)
        if participation_refusal(party, facts.flags, clients.get(party.client_id or -1)) is not None:
            return Blocked(refusal, p)
    return Blocked(refusal, None)


def team_text(blocked: Blocked, me_id: int) -> str:
    """What a team member's thread says, with who can change it."""
    code, who = blocked.refusal.code, blocked.who
    if code == "team_messaging_off":
        return f"Secure messaging is off for this practice. {MANAGERS_CAN}"
    if code == "client_messaging_off":
        return f"Secure messaging with clients is off for this practice. {MANAGERS_CAN}"
    if who is not None and code == "team_member_deactivated":
        return (
            f"{who.name}'s account is deactivated, so nobody can write in this conversation. The account "
            "owner or a practice manager can reactivate it in Settings > People."
        )
    if who is not None:
        name = "you" if who.id == me_id else who.name
        return f"Secure messaging is off for {name}. {MANAGERS_CAN}"
    return blocked.refusal.message


async def team_notice(
    actor: Participant, conversation_id: int, client_messaging_off: Any
) -> dict[str, Any] | None:
    """`blocked` of GET /conversations/{id} for a team member: `{code, rule, text, participant_id}`, or
    None. A client whose own messaging is off is `client_messaging_off` already (with "Enable Secure
    Messaging" for those who may), so it is not said twice."""
    if actor.kind != TEAM:
        return None
    people = await conversations.get_members_unordered(conversation_id)
    blocked = await why_blocked(actor, conversation_id, people)
    if blocked is None:
        return None
    if client_messaging_off is not None and blocked.who is not None and blocked.who.kind != TEAM:
        return None
    return {
        "code": blocked.refusal.code,
        "rule": blocked.refusal.rule,
        "text": team_text(blocked, actor.id),
        "participant_id": blocked.who.id if blocked.who else None,
    }


async def picker_notices(actor: Participant, q: str | None) -> list[dict[str, Any]]:
    """What the team's New message picker says above its list: messaging off for the practice, for the
    clients, for the person searching; and team members matching the search whom nobody can write to now
    (messaging off, deactivated), so a missing name is explained rather than silently absent."""
    if actor.kind != TEAM:
        return []
    practice = await practices.get_practice(actor.practice_id)
    notes: list[dict[str, Any]] = []

    rules = {
        "team_messaging_off": "R1",
        "client_messaging_off": "R1",
        "team_member_messaging_disabled": "R3",
        "team_member_deactivated": "R26",
    }

    def note(code: str, text: str, participant_id: int | None = None) -> None:
        notes.append({"code": code, "rule": rules[code], "text": text, "participant_id": participant_id})

    if not practice.team_messaging_enabled:
        note("team_messaging_off", f"Secure messaging is off for this practice. {MANAGERS_CAN}")
    elif not practice.client_messaging_enabled:
        note(
            "client_messaging_off",
            f"Secure messaging with clients is off for this practice, so no client is listed. {MANAGERS_CAN}",
        )
    if not actor.messaging_enabled:
        note("team_member_messaging_disabled", f"Secure messaging is off for you. {MANAGERS_CAN}", actor.id)
    needle = (q or "").strip()[:100]
    if needle:
        unreachable = await visibility_store.list_unreachable_team_members(
            actor.practice_id, actor.id, needle, MAX_PICKER_NOTICES
        )
        for p in unreachable:
            if not p.active:
                note(
                    "team_member_deactivated",
                    f"{p.name}'s account is deactivated. The account owner or a practice manager can "
                    "reactivate it in Settings > People.",
                    p.id,
                )
            else:
                note(
                    "team_member_messaging_disabled",
                    f"Secure messaging is off for {p.name}. {MANAGERS_CAN}",
                    p.id,
                )
    return notes


# --- who hears `messaging.changed` ----------------------------------------------------------------------


async def practice_people(practice_id: int) -> list[int]:
    """The practice's messaging was switched: everyone in it may be writing somewhere it concerns."""
    return await visibility_store.get_practice_people_ids(practice_id)


async def people_sharing_conversations(participant_id: int) -> list[int]:
    """A team member's messaging or account changed: the people in conversations with them."""
    conv_ids = await conversations.get_conversation_ids(participant_id)
    return sorted(set(await conversations.get_member_ids(conv_ids)))


async def people_in_client_conversations(client_id: int) -> list[int]:
    """A client's messaging or portal access changed: the people in that client's conversations."""
    conv_ids = await conversations.get_client_conversation_ids(client_id)
    return sorted(set(await conversations.get_member_ids(conv_ids)))
