"""What the client portal pages need beyond `inbox.messaging`: the practice's name for the page header,
why a conversation cannot be written in (said before anyone types), and marking a conversation read when
its newest page is shown (R15)."""

from __future__ import annotations

from inbox import messaging
from inbox.context import InboxContext
from inbox.messaging import Outcome, load_facts
from inbox.models import TEAM, ConversationMember, Participant, Practice
from inbox.permissions import check_exchange, participation_refusal
from inbox.store.orm import ids_of


async def practice_name(person: Participant) -> str:
    practice = await Practice.get_or_none(id=person.practice_id)
    return practice.name if practice else ""


async def primary_clinician_id(person: Participant) -> int | None:
    """The client's primary clinician, for a client or one of the client's contacts (R10)."""
    if person.kind == "client":
        return person.primary_clinician_id
    client = await Participant.get_or_none(id=person.client_id or 0, practice_id=person.practice_id)
    return client.primary_clinician_id if client else None


async def read_on_view(
    ctx: InboxContext, actor: Participant, conversation_id: int, newest_message_id: int
) -> Outcome:
    """The person has seen the conversation up to `newest_message_id`: mark it read, but only when that
    moves their read marker, so reloading a page does not send "read" events to everyone each time."""
    member = await ConversationMember.get_or_none(conversation_id=conversation_id, participant_id=actor.id)
    if member is None or (member.last_read_message_id or 0) >= newest_message_id:
        return Outcome()
    _, outcome = await messaging.mark_read(ctx, actor, conversation_id, newest_message_id)
    return outcome


async def blocked_reason(person: Participant, conversation_id: int, people: list[Participant]) -> str | None:
    """Why `person` cannot write in this conversation now, in their words, or None if they can.

    The same check as sending (`inbox.permissions.check_exchange`, R1, R3, R4, R8, R26), asked before anyone
    types; a refusal that names one person (messaging off for them, a deactivated account) names them.
    """
    others = [p for p in people if p.id != person.id]
    facts = await load_facts(person.practice_id, [person, *others])
    writers = await ids_of(
        ConversationMember.filter(conversation_id=conversation_id, has_written=True), "participant_id"
    )
    refusal = check_exchange(
        facts.party(person),
        [facts.party(o) for o in others],
        flags=facts.flags,
        grants=facts.grants,
        clients=facts.client_parties(),
        prior_writers=set(writers),
    )
    if refusal is None:
        return None
    if refusal.code in ("team_messaging_off", "client_messaging_off"):
        return "Secure messaging is off for this practice right now; ask your practice."
    clients = facts.client_parties()
    for p in [person, *others]:
        party = facts.party(p)
        if participation_refusal(party, facts.flags, clients.get(party.client_id or -1)) is None:
            continue
        if p.id == person.id:
            return "Secure messaging is off for you; ask your practice."
        if p.kind == TEAM:
            return f"Secure messaging is off for {p.name}; ask your practice."
    return f"{refusal.message} Ask your practice."
