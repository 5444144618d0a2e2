"""Messaging (docs/api.md §3): me, away, recipients, conversations, messages."""

from __future__ import annotations

from typing import Annotated, Literal

from gateway.shapes.common import Kind, Named, Role
from gateway.typed import Answer, BigId, Body, ItemId, Time, absent, items, limit
from inbox.messaging import MAX_AWAY, MAX_BODY, MAX_PARTICIPANTS
from inbox.sending import MAX_CLIENT_MSG_ID

# R12: 1 to 5,000 characters after trimming, refused by the domain (`empty_message`, `message_too_long`).
MessageText = Annotated[str, limit(minLength=1, maxLength=MAX_BODY)]

# --- requests ---------------------------------------------------------------------------------------------


class AwayBody(Body):
    enabled: bool
    message: Annotated[str | None, limit(maxLength=MAX_AWAY)] = None  # else 422 away_message_too_long


class OpenBody(Body):
    participant_ids: Annotated[list[ItemId], items(MAX_PARTICIPANTS), limit(minItems=1)]
    body: MessageText | None = None


class SendBody(Body):
    body: MessageText
    client_msg_id: Annotated[str | None, limit(minLength=1, maxLength=MAX_CLIENT_MSG_ID)] = None


class ReadBody(Body):
    up_to_message_id: BigId


# --- answers ----------------------------------------------------------------------------------------------


class Participant(Answer):
    id: int
    name: str
    kind: Kind
    roles: list[Role]
    away: bool


class Me(Participant):
    email: str
    messaging_enabled: bool = absent()  # team members
    can_export: bool = absent()
    totp_enabled: bool = absent()
    client_id: int = absent()  # contacts


class Recipient(Participant):
    recent: bool
    email: str = absent()  # for a team member
    contact_of: Named = absent()
    messaging_enabled: bool = absent()  # with include_disabled
    can_enable: bool = absent()


class Away(Answer):
    enabled: bool
    message: Annotated[str, limit(maxLength=MAX_AWAY)]


class Banner(Answer):
    kind: Literal["away"]
    participant_id: int
    name: str
    text: str


class Removed(Answer):
    by: int | None
    at: Time


class Message(Answer):
    id: int
    conversation_id: int
    sender_id: int
    body: str | None
    body_html: str | None
    created_at: Time
    removed: Removed | None
    client_msg_id: str | None


class ClientMessagingOff(Answer):
    """For a team member: the client whose own messaging is off (R4), and whether they may turn it on."""

    client_id: int
    name: str
    can_enable: bool


class Blocked(Answer):
    """Why nobody can write here now (or why someone cannot be messaged), with who can change it."""

    code: str
    rule: str
    text: str
    participant_id: int | None


class Conversation(Answer):
    id: int
    participants: list[Participant]
    client_id: int | None
    banner: Banner | None
    created_at: Time
    client_messaging_off: ClientMessagingOff | None
    # GET /conversations/{id} for a team member: why nobody can write here now, or null.
    blocked: Blocked | None = absent()


class OpenedConversation(Conversation):
    message: Message = absent()  # when a first message was sent


class ConversationSummary(Answer):
    id: int
    participants: list[Participant]
    last_message: Message | None
    unread_count: Annotated[int, limit(minimum=0)]
    last_activity_at: Time
    banner: Banner | None


class MeAnswer(Answer):
    participant: Me
    unread_total: int
    away: Away


class Recipients(Answer):
    items: list[Recipient]
    # For a team member: who cannot be messaged now and why (clients off for the practice, team members
    # off or deactivated); empty for a client.
    notices: list[Blocked]


class ConversationPage(Answer):
    items: list[ConversationSummary]
    next_cursor: str | None


class MessagePage(Answer):
    items: list[Message]
    next_before: int | None


class Sent(Answer):
    message: Message
    banner: Banner | None


class UnreadTotal(Answer):
    unread_total: int


class RemovedMessage(Answer):
    message: Message
