"""Messaging (docs/api.md §3): me, away, recipients, conversations, messages, read, remove."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from gateway import api_devices
from gateway.auditing import audit_access, audit_request
from gateway.auth import bearer_token, has_principal, require_participant, sender_id_from
from gateway.keys import CTX, DISPATCHER, HUB
from gateway.limits import client_ip, enforce
from gateway.routing import BIG_ID_SCHEMA, PERSON, cursor, limit, operation, path_id, query
from gateway.shapes import messaging as shapes
from gateway.typed import answer, read_body
from gateway.validation import path_int, query_int
from inbox import blocked, db, messaging, sending
from inbox.errors import DomainError
from inbox.messaging import Event

routes = web.RouteTableDef()

CONVERSATION = [path_id(what="conversation")]
_SEND = (
    f"A message holds 1 to {messaging.MAX_BODY:,} characters after trimming (R12): else 422 "
    "`empty_message` / `message_too_long`. Emoji codes (`:thumbsup:`) show as emoji in `body_html`; "
    "`body` keeps what was typed."
)


async def publish(request: web.Request, events: Iterable[Event]) -> None:
    hub = request.app[HUB]
    for event in events:
        await hub.publish(event.recipients, event.payload)
    # New outbox rows may be due now (a client's email, pushes): let this process's dispatcher look at once.
    request.app[DISPATCHER].wake()


@routes.get("/api/v1/me")
@operation(
    "me",
    "Who is calling, the unread total (R15) and the away state (R20).",
    tag="messaging",
    security=PERSON,
    ok={200: ("Me.", shapes.MeAnswer)},
    errors=[403],
)
async def me(request: web.Request) -> web.Response:
    p = await require_participant(request)
    return answer(
        {
            "participant": messaging.me_json(p),
            "unread_total": await messaging.unread_total(p.id),
            "away": messaging.away_json(p),
        }
    )


@routes.put("/api/v1/me/away")
@operation(
    "put_away",
    "Turn the away message on or off (R20, team members only).",
    tag="messaging",
    security=PERSON,
    body=shapes.AwayBody,
    ok={200: ("The away state.", shapes.Away)},
    errors=[403],
    description=f"422 `away_message_too_long` over {messaging.MAX_AWAY} characters.",
)
async def put_away(request: web.Request) -> web.Response:
    p = await require_participant(request)
    body = await read_body(request, shapes.AwayBody)
    outcome = await messaging.set_away(request.app[CTX], p, body.enabled, body.message)
    await publish(request, outcome.events)
    return answer(messaging.away_json(p))


@routes.get("/api/v1/recipients")
@operation(
    "recipients",
    "People the caller may message: recently messaged first, then matches for q (a first-name prefix "
    "match first, then another word's, then the rest). A team member's rows also carry `email`, and "
    "a contact's `contact_of`.",
    tag="messaging",
    security=PERSON,
    params=[
        query("q", {"type": "string"}, "Part of a name or email address."),
        query(
            "include_disabled",
            {"type": "string"},
            '"1" or "true": also clients whose own messaging is off but who could be messaged once '
            "it is on, with `messaging_enabled: false` and `can_enable` (owners and managers, and a "
            "clinician or supervisor with access to the client: R4, R5).",
        ),
        limit(20, 100),
    ],
    ok={200: ("Recipients.", shapes.Recipients)},
    errors=[403, 422],
)
async def recipients(request: web.Request) -> web.Response:
    p = await require_participant(request)
    q = request.query.get("q")
    limit = query_int(request, "limit", default=20, lo=1, hi=100) or 20
    include_disabled = request.query.get("include_disabled", "") in ("1", "true")
    items = await messaging.recipients(p, q, limit, include_disabled=include_disabled)
    return answer({"items": items, "notices": await blocked.picker_notices(p, q)})


@routes.get("/api/v1/conversations")
@operation(
    "list_conversations",
    "The caller's conversations, newest activity first.",
    tag="messaging",
    security=PERSON,
    params=[cursor(), limit(30, 100)],
    ok={200: ("A page.", shapes.ConversationPage)},
    errors=[403, 422],
)
async def list_conversations(request: web.Request) -> web.Response:
    p = await require_participant(request)
    limit = query_int(request, "limit", default=30, lo=1, hi=100) or 30
    page = await messaging.list_conversations(request.app[CTX], p, request.query.get("cursor") or None, limit)
    return answer(page)


@routes.post("/api/v1/conversations")
@operation(
    "open_conversation",
    "Open the exchange for a set of participants (R11), optionally with a first message.",
    tag="messaging",
    security=PERSON,
    body=shapes.OpenBody,
    ok={
        200: ("The existing exchange for the same set.", shapes.OpenedConversation),
        201: ("A new conversation.", shapes.OpenedConversation),
    },
    errors=[403, 404, 429],
    description="403 names the rule that forbids it (`error.rule`, R5–R10). More than "
    f"{messaging.MAX_PARTICIPANTS} ids: 413 `too_many_items`. " + _SEND,
)
async def open_conversation(request: web.Request) -> web.Response:
    p = await require_participant(request)
    body = await read_body(request, shapes.OpenBody)
    if body.body is not None:
        await enforce(request, "send", p.id)
    ctx = request.app[CTX]
    opened = await messaging.open_conversation(ctx, p, body.participant_ids, body.body, ip=client_ip(request))
    assert opened.conversation is not None
    await publish(request, opened.events)
    detail = await messaging.conversation_detail(p, opened.conversation.id)
    if opened.message is not None:
        detail["message"] = messaging.message_json(ctx, opened.message)
    return answer(detail, status=201 if opened.created else 200)


@routes.get("/api/v1/conversations/{id}")
@operation(
    "get_conversation",
    "A conversation: participants and the away banner (R20).",
    tag="messaging",
    security=PERSON,
    params=CONVERSATION,
    ok={200: ("The conversation.", shapes.Conversation)},
    errors=[403, 404],
)
async def get_conversation(request: web.Request) -> web.Response:
    p = await require_participant(request)
    detail = await messaging.conversation_detail(p, path_int(request, "id"))
    # Why the team member cannot write here now, with who can change it (said before anyone types).
    detail["blocked"] = await blocked.team_notice(p, detail["id"], detail["client_messaging_off"])
    return answer(detail)


@routes.get("/api/v1/conversations/{id}/messages")
@operation(
    "list_messages",
    "A page of messages, oldest to newest; removed ones have body null (R14).",
    tag="messaging",
    security=PERSON,
    params=[
        *CONVERSATION,
        query("before", BIG_ID_SCHEMA, "The `next_before` of the previous page."),
        limit(50, 200),
    ],
    ok={200: ("A page.", shapes.MessagePage)},
    errors=[403, 404, 422],
)
async def list_messages(request: web.Request) -> web.Response:
    p = await require_participant(request)
    before = query_int(request, "before", lo=1)
    limit = query_int(request, "limit", default=50, lo=1, hi=200) or 50
    conversation_id = path_int(request, "id")
    page = await messaging.list_messages(request.app[CTX], p, conversation_id, before, limit)
    await audit_access(request, p, "conversation.open", conversation_id)
    return answer(page)


@routes.post("/api/v1/conversations/{id}/messages")
@operation(
    "send_message",
    "Send a message; the same client_msg_id again returns the first message (200).",
    tag="messaging",
    security=PERSON,
    params=CONVERSATION,
    body=shapes.SendBody,
    ok={200: ("A repeat of an earlier client_msg_id.", shapes.Sent), 201: ("Sent.", shapes.Sent)},
    errors=[403, 404, 409, 429],
    description=_SEND + " 409 `client_msg_id_reused` when the id was used in another conversation.",
)
async def send_message(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    # The body is read before the caller is looked up, so that a bearer token and the conversation can be
    # looked up in one query (one round trip to PostgreSQL, not two); its errors are still told only once
    # the caller has been found good, as on every other call.
    try:
        data = await read_body(request, shapes.SendBody)
        body, client_msg_id = data.body, data.client_msg_id
        conversation_id = path_int(request, "id")
    except DomainError:
        await require_participant(request)
        raise
    token = bearer_token(request)
    if token is None or has_principal(request):  # a session cookie (our pages, with CSRF)
        p = await require_participant(request)
        await enforce(request, "send", p.id)
        sent = await sending.send_message(ctx, p, conversation_id, body, client_msg_id, ip=client_ip(request))
    else:
        caller = await sending.read_caller(ctx, token, conversation_id, client_msg_id)
        await enforce(request, "send", sender_id_from(request, caller))
        sent = await sending.send_as(ctx, caller, conversation_id, body, client_msg_id, ip=client_ip(request))
    assert sent.message is not None
    await publish(request, sent.events)
    return answer(
        {"message": sent.data or messaging.message_json(ctx, sent.message), "banner": sent.banner},
        status=201 if sent.created else 200,
    )


@routes.post("/api/v1/conversations/{id}/read")
@operation(
    "mark_read",
    "Read up to a message: clears that part of the unread count (R15).",
    tag="messaging",
    security=PERSON,
    params=CONVERSATION,
    body=shapes.ReadBody,
    ok={200: ("The caller's unread total.", shapes.UnreadTotal)},
    errors=[403, 404],
)
async def mark_read(request: web.Request) -> web.Response:
    p = await require_participant(request)
    up_to = (await read_body(request, shapes.ReadBody)).up_to_message_id
    total, outcome = await messaging.mark_read(request.app[CTX], p, path_int(request, "id"), up_to)
    await api_devices.badge_to_other_devices(request, p)
    await publish(request, outcome.events)
    return answer(shapes.UnreadTotal.model_construct(unread_total=total))


@routes.delete("/api/v1/messages/{id}")
@operation(
    "remove_message",
    "The sender removes a message (R14).",
    tag="messaging",
    security=PERSON,
    params=[path_id(what="message", schema=BIG_ID_SCHEMA)],
    ok={200: ("Removed (also when it was already).", shapes.RemovedMessage)},
    errors=[403, 404],
)
async def remove_message(request: web.Request) -> web.Response:
    p = await require_participant(request)
    ctx = request.app[CTX]
    async with db.transaction():  # the removal and its audit row commit together, or neither does
        msg, outcome = await messaging.remove_message(ctx, p, path_int(request, "id", big=True))
        if outcome.events:  # removed now, not a repeat of an earlier removal
            await audit_request(
                request, p, "message.remove", "message", msg.id, {"conversation_id": msg.conversation_id}
            )
    await publish(request, outcome.events)
    return answer({"message": messaging.message_json(ctx, msg)})
