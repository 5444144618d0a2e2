"""The send path (POST /conversations/{id}/messages): the same rules as the rest of `inbox.messaging`, with
as few round trips as the rules allow.

One read, one write, both prepared SQL in `inbox.store.messages`:

- read (`store.messages.read_send_facts`): the conversation's members, who has written, the practice's
  flags, the earlier message of a `client_msg_id`, and the access grants, in as few queries as it takes;
  with the caller's token in the same query when the gateway asks for both (`read_caller`).
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

from typing import NamedTuple

from tortoise.exceptions import IntegrityError

from inbox import accounts, audit, outbox, webhooks
from inbox.accounts import Principal
from inbox.context import InboxContext
from inbox.errors import Conflict, Invalid, NotFound
from inbox.exchange import Event, Facts, Sent, banner_for, check, iso, render_body_html, validate_body
from inbox.models import Message, Participant
from inbox.permissions import PracticeFlags
from inbox.store import messages
from inbox.store.messages import NewMessage, SendFacts

EVENT = "message.created"
MAX_CLIENT_MSG_ID = 100  # characters of a client_msg_id (the column's width)


# --- the whole send -------------------------------------------------------------------------------------


class Caller(NamedTuple):
    """Who is calling, and what `send_message` needs to know of the conversation (None: not theirs)."""

    principal: Principal | None
    loaded: SendFacts | None


async def read_caller(
    ctx: InboxContext, token: str, conversation_id: int, client_msg_id: str | None
) -> Caller:
    """`accounts.resolve_token(token)` and the read `send_message` starts with, in one query. The caller
    decides what a missing principal means (401) before anything is said about the conversation."""
    token_hash = accounts.presented_token_hash(ctx, token)
    if token_hash is None:
        return Caller(None, None)
    now = ctx.clock.now()
    principal, loaded = await messages.read_caller_and_send_facts(
        token_hash,
        conversation_id,
        client_msg_id,
        lambda row, prefix: accounts.principal_from_row(row, now, participant_prefix=prefix),
    )
    return Caller(principal, loaded)


async def send_message(
    ctx: InboxContext,
    actor: Participant,
    conversation_id: int,
    body: str,
    client_msg_id: str | None = None,
    *,
    caller: Caller | None = None,
    ip: str | None = None,
) -> Sent:
    """`caller`: from `read_caller` with the same conversation and client_msg_id, for `actor`; without it,
    the read is made here. `ip`: the sender's address, for the send's audit row."""
    if caller is not None and caller.principal is not None and caller.principal.participant is actor:
        loaded = caller.loaded
    else:
        loaded = await messages.read_send_facts(actor, conversation_id, client_msg_id)
    if loaded is None:
        raise NotFound("conversation")
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


def _replayed(conversation_id: int, earlier: Message, people: list[Participant]) -> Sent:
    """The same client_msg_id again: the first message, never a duplicate."""
    if earlier.conversation_id != conversation_id:
        raise Conflict("client_msg_id_reused", "This client_msg_id was already used in another conversation.")
    return Sent(message=earlier, created=False, banner=banner_for(people))
