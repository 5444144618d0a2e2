"""What the client portal pages need beyond `inbox.messaging`: the practice's name for the page header,
and marking a conversation read when its newest page is shown (R15)."""

from __future__ import annotations

from inbox import messaging
from inbox.context import InboxContext
from inbox.messaging import Outcome
from inbox.models import ConversationMember, Participant, Practice


async def practice_name(person: Participant) -> str:
    practice = await Practice.get_or_none(id=person.practice_id)
    return practice.name if practice else ""


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
