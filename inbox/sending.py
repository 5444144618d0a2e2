"""The send path (POST /conversations/{id}/messages): the same rules as the rest of `inbox.messaging`, with
as few round trips as the rules allow.

One read, one write, both prepared SQL in `inbox.store.messages`:

- read (`store.messages.read_send_facts`): the conversation's members (the few columns the send reads,
  not `Participant` models: `store.messages.Member`), who has written, the practice's flags, the earlier
  message of a `client_msg_id`, and the access grants, in as few queries as it takes; with the caller's
  token in the same query when the gateway asks for both (`read_caller`).
- the checks, here, in Python, in the same order as ever: 404, body (R12), client_msg_id, the replay of an
  earlier send (200, never a duplicate), then who may write to whom (R1–R10, `inbox.permissions`).
- write (`store.messages.add_message`, through the group commit): the message, its audit row (R24,
  unsealed with its mac: `audit.send_row`; sealed into the chain a moment after the commit), the members'
  unread counts and activity, the conversation's last message, the outbox rows (`outbox.new_message_rows`),
  the webhook deliveries (`webhooks.new_delivery`), and the recipients' unread totals read in the same
  transaction.

A duplicate `client_msg_id` that races past the read (two sends of the same id at once) fails its write on
the unique index and is answered with the first message, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from tortoise.exceptions import IntegrityError

from inbox import accounts, audit, outbox, webhooks
from inbox.context import InboxContext
from inbox.errors import Conflict, Invalid, NotFound
from inbox.exchange import (
    Event,
    Facts,
    Person,
    Sent,
    banner_for,
    check,
    iso,
    render_body_html,
    validate_body,
)
from inbox.models import Message, Participant
from inbox.permissions import PracticeFlags
from inbox.store import messages
from inbox.store.messages import CallerFacts, NewMessage, SendFacts

# Who is calling, as `read_caller` found them with the conversation (`store.messages.CallerFacts`).
Caller = CallerFacts

EVENT = "message.created"
MAX_CLIENT_MSG_ID = 100  # characters of a client_msg_id (the column's width)


# --- the whole send -------------------------------------------------------------------------------------


async def read_caller(
    ctx: InboxContext, token: str, conversation_id: int, client_msg_id: str | None
) -> Caller:
    """Whether `token` lets its caller in (as `accounts.resolve_token` judges it: `accounts.token_holds`),
    whose it is, and the read `send_message` starts with, in one query. The caller decides what a token
    that does not hold means (401), or one without a participant (403), before anything is said about the
    conversation; then `send_as`."""
    token_hash = accounts.presented_token_hash(ctx, token)
    if token_hash is None:
        return Caller(False)
    now = ctx.clock.now()
    return await messages.read_caller_and_send_facts(
        token_hash,
        conversation_id,
        client_msg_id,
        lambda row: accounts.token_holds(row["t_expires_at"], row["t_participant_id"], row["a_active"], now),
    )


async def send_as(
    ctx: InboxContext,
    caller: Caller,
    conversation_id: int,
    body: str,
    client_msg_id: str | None = None,
    *,
    ip: str | None = None,
) -> Sent:
    """`send_message` for a caller `read_caller` found (the same conversation and client_msg_id), whose
    token holds and has a participant."""
    if caller.actor is None or caller.loaded is None:
        raise NotFound("conversation")
    return await _send(ctx, caller.actor, caller.loaded, conversation_id, body, client_msg_id, ip)


async def send_message(
    ctx: InboxContext,
    actor: Participant,
    conversation_id: int,
    body: str,
    client_msg_id: str | None = None,
    *,
    ip: str | None = None,
) -> Sent:
    """`ip`: the sender's address, for the send's audit row."""
    loaded = await messages.read_send_facts(actor.id, actor.practice_id, conversation_id, client_msg_id)
    if loaded is None:
        raise NotFound("conversation")
    return await _send(ctx, actor, loaded, conversation_id, body, client_msg_id, ip)


async def _send(
    ctx: InboxContext,
    actor: Person,
    loaded: SendFacts,
    conversation_id: int,
    body: str,
    client_msg_id: str | None,
    ip: str | None,
) -> Sent:
    text = validate_body(body)
    if client_msg_id is not None and not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID:
        raise Invalid(
            "invalid_client_msg_id",
            f"client_msg_id must be 1 to {MAX_CLIENT_MSG_ID} characters.",
            field="client_msg_id",
        )
    people = loaded.people
    if loaded.earlier is not None:
        return _replayed(conversation_id, loaded.earlier, people)
    others = [p for p in people if p.id != actor.id]
    flags = PracticeFlags(loaded.client_messaging_on, loaded.team_messaging_on)
    check(actor, others, Facts(flags, loaded.grants, loaded.clients), loaded.writers)

    now = ctx.clock.now()
    new = NewMessage(
        conversation_id=conversation_id,
        practice_id=actor.practice_id,
        sender_id=actor.id,
        cipher=ctx.keyring.encrypt(text, f"conversation:{conversation_id}"),
        client_msg_id=client_msg_id,
        now=now,
        recipient_ids=tuple(o.id for o in others),
        outbox_rows=outbox.new_message_rows(
            practice_id=actor.practice_id,
            conversation_id=conversation_id,
            message_id=0,  # the write puts in the new message's id
            recipients=[(o.id, o.kind) for o in others],
            delay_s=loaded.unread_delay_s or ctx.default_unread_delay_s,
            now=now,
        ),
        audit=audit.send_row(ctx, actor, conversation_id, now, ip),
        event=EVENT,
        webhook_job_kind=webhooks.WEBHOOK,
        delivery=lambda data: webhooks.new_delivery(EVENT, data, now),
    )
    try:
        message_id, totals = await messages.add_message(ctx.writes, new)
    except IntegrityError:
        if client_msg_id is None:
            raise
        earlier = await messages.get_earlier_message(actor.id, client_msg_id)
        if earlier is None:
            raise
        return _replayed(conversation_id, earlier, people)
    audit.seal_soon(ctx, actor.practice_id)

    msg = messages.written_message(new, message_id)
    # What `messaging.message_json` would say, without decrypting what was just encrypted.
    data = {
        "id": message_id,
        "conversation_id": conversation_id,
        "sender_id": actor.id,
        "body": text,
        "body_html": render_body_html(text),
        "created_at": iso(now),
        "removed": None,
        "client_msg_id": client_msg_id,
    }
    everyone = tuple(p.id for p in people)
    events = [Event(everyone, {"type": EVENT, "conversation_id": conversation_id, "message": data})]
    events += [Event((pid,), {"type": "unread", "unread_total": total}) for pid, total in totals.items()]
    return Sent(events=events, message=msg, created=True, banner=banner_for(people), data=data)


def _replayed(conversation_id: int, earlier: Message, people: Sequence[Person]) -> Sent:
    """The same client_msg_id again: the first message, never a duplicate."""
    if earlier.conversation_id != conversation_id:
        raise Conflict("client_msg_id_reused", "This client_msg_id was already used in another conversation.")
    return Sent(message=earlier, created=False, banner=banner_for(people))
