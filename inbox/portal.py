"""What the client portal pages need beyond `inbox.messaging`: the practice's name for the page header,
why a conversation cannot be written in (said before anyone types), and marking a conversation read when
its newest page is shown (R15)."""

from __future__ import annotations

from inbox import blocked, messaging
from inbox.context import InboxContext
from inbox.messaging import Outcome
from inbox.models import TEAM, Participant
from inbox.store import conversations, practices
from inbox.store import portal as portal_store


async def practice_name(person: Participant) -> str:
    practice = await portal_store.get_practice_or_none(person.practice_id)
    return practice.name if practice else ""


async def primary_clinician_id(person: Participant) -> int | None:
    """The client's primary clinician, for a client or one of the client's contacts (R10)."""
    if person.kind == "client":
        return person.primary_clinician_id
    client = await portal_store.get_person(person.client_id or 0, practice_id=person.practice_id)
    return client.primary_clinician_id if client else None


async def read_on_view(
    ctx: InboxContext, actor: Participant, conversation_id: int, newest_message_id: int
) -> Outcome:
    """The person has seen the conversation up to `newest_message_id`: mark it read, but only when that
    moves their read marker, so reloading a page does not send "read" events to everyone each time."""
    member = await conversations.get_member_or_none(conversation_id, actor.id)
    if member is None or (member.last_read_message_id or 0) >= newest_message_id:
        return Outcome()
    _, outcome = await messaging.mark_read(ctx, actor, conversation_id, newest_message_id)
    return outcome


async def blocked_reason(person: Participant, conversation_id: int, people: list[Participant]) -> str | None:
    """Why `person` cannot write in this conversation now, in their words, or None if they can.

    The same check as sending (`inbox.blocked.why_blocked`: R1, R3, R4, R8, R26), asked before anyone
    types; a refusal that names one person (messaging off for them, a deactivated account) names them.
    """
    found = await blocked.why_blocked(person, conversation_id, people)
    if found is None:
        return None
    if found.who is None and found.refusal.code in ("team_messaging_off", "client_messaging_off"):
        return "Secure messaging is off for this practice right now; ask your practice."
    if found.who is not None and found.who.id == person.id:
        return "Secure messaging is off for you; ask your practice."
    if found.who is not None and found.who.kind == TEAM:
        return f"Secure messaging is off for {found.who.name}; ask your practice."
    return f"{found.refusal.message} Ask your practice."


async def new_message_notice(person: Participant) -> str | None:
    """What the portal's New message page says before its list when someone the person would expect there
    cannot be written to now: messaging off for the practice, for the person, or for their clinician."""
    practice = await practices.get_practice(person.practice_id)
    if not (practice.team_messaging_enabled and practice.client_messaging_enabled):
        return "Secure messaging is off for this practice right now; ask your practice."
    client = person if person.kind == "client" else await portal_store.get_person(person.client_id or 0)
    if client is not None and not client.messaging_enabled:  # a contact takes part under the client's (R10)
        return "Secure messaging is off for you; ask your practice."
    clinician_id = client.primary_clinician_id if client else None
    clinician = await portal_store.get_person(clinician_id or 0, practice_id=person.practice_id, kind=TEAM)
    if clinician is not None and not (clinician.active and clinician.messaging_enabled):
        return f"Secure messaging is off for {clinician.name}, your clinician; ask your practice."
    return None
