"""Messaging (docs/api.md §3): me, away, recipients, conversations, messages, read, remove."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from tortoise.transactions import in_transaction

from gateway import api_devices
from gateway.auditing import audit_access, audit_request
from gateway.auth import bearer_token, has_principal, participant_from, require_participant
from gateway.keys import CTX, DISPATCHER, HUB
from gateway.limits import client_ip, enforce
from gateway.validation import path_int, query_int, read_json, take
from inbox import blocked, messaging, sending
from inbox.errors import DomainError
from inbox.messaging import Event

routes = web.RouteTableDef()


async def publish(request: web.Request, events: Iterable[Event]) -> None:
    hub = request.app[HUB]
    for event in events:
        await hub.publish(event.recipients, event.payload)
    # New outbox rows may be due now (a client's email, pushes): let this process's dispatcher look at once.
    request.app[DISPATCHER].wake()


@routes.get("/api/v1/me")
async def me(request: web.Request) -> web.Response:
    p = await require_participant(request)
    return web.json_response(
        {
            "participant": messaging.me_json(p),
            "unread_total": await messaging.unread_total(p.id),
            "away": messaging.away_json(p),
        }
    )


@routes.put("/api/v1/me/away")
async def put_away(request: web.Request) -> web.Response:
    p = await require_participant(request)
    data = await read_json(request, {"enabled", "message"})
    enabled = take(data, "enabled", bool, required=True)
    message = take(data, "message", str, nullable=True)
    outcome = await messaging.set_away(request.app[CTX], p, enabled, message)
    await publish(request, outcome.events)
    return web.json_response(messaging.away_json(p))


@routes.get("/api/v1/recipients")
async def recipients(request: web.Request) -> web.Response:
    p = await require_participant(request)
    q = request.query.get("q")
    limit = query_int(request, "limit", default=20, lo=1, hi=100) or 20
    include_disabled = request.query.get("include_disabled", "") in ("1", "true")
    items = await messaging.recipients(p, q, limit, include_disabled=include_disabled)
    return web.json_response({"items": items, "notices": await blocked.picker_notices(p, q)})


@routes.get("/api/v1/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    p = await require_participant(request)
    limit = query_int(request, "limit", default=30, lo=1, hi=100) or 30
    page = await messaging.list_conversations(request.app[CTX], p, request.query.get("cursor") or None, limit)
    return web.json_response(page)


@routes.post("/api/v1/conversations")
async def open_conversation(request: web.Request) -> web.Response:
    p = await require_participant(request)
    data = await read_json(request, {"participant_ids", "body"})
    ids = take(data, "participant_ids", list, required=True, item=int, max_items=messaging.MAX_PARTICIPANTS)
    body = take(data, "body", str, nullable=True)
    if body is not None:
        await enforce(request, "send", p.id)
    ctx = request.app[CTX]
    opened = await messaging.open_conversation(ctx, p, ids, body, ip=client_ip(request))
    assert opened.conversation is not None
    await publish(request, opened.events)
    answer = await messaging.conversation_detail(p, opened.conversation.id)
    if opened.message is not None:
        answer["message"] = messaging.message_json(ctx, opened.message)
    return web.json_response(answer, status=201 if opened.created else 200)


@routes.get("/api/v1/conversations/{id}")
async def get_conversation(request: web.Request) -> web.Response:
    p = await require_participant(request)
    detail = await messaging.conversation_detail(p, path_int(request, "id"))
    # Why the team member cannot write here now, with who can change it (said before anyone types).
    detail["blocked"] = await blocked.team_notice(p, detail["id"], detail["client_messaging_off"])
    return web.json_response(detail)


@routes.get("/api/v1/conversations/{id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    p = await require_participant(request)
    before = query_int(request, "before", lo=1)
    limit = query_int(request, "limit", default=50, lo=1, hi=200) or 50
    conversation_id = path_int(request, "id")
    page = await messaging.list_messages(request.app[CTX], p, conversation_id, before, limit)
    await audit_access(request, p, "conversation.open", conversation_id)
    return web.json_response(page)


@routes.post("/api/v1/conversations/{id}/messages")
async def send_message(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    # The body is read before the caller is looked up, so that a bearer token and the conversation can be
    # looked up in one query (one round trip to PostgreSQL, not two); its errors are still told only once
    # the caller has been found good, as on every other call.
    try:
        data = await read_json(request, {"body", "client_msg_id"})
        body = take(data, "body", str, required=True)
        client_msg_id = take(data, "client_msg_id", str, nullable=True)
        conversation_id = path_int(request, "id")
    except DomainError:
        await require_participant(request)
        raise
    token = bearer_token(request)
    caller: sending.Caller | None = None
    if token is None or has_principal(request):  # a session cookie (our pages, with CSRF)
        p = await require_participant(request)
    else:
        caller = await sending.read_caller(ctx, token, conversation_id, client_msg_id)
        p = participant_from(request, caller.principal)
    await enforce(request, "send", p.id)
    sent = await sending.send_message(
        ctx, p, conversation_id, body, client_msg_id, caller=caller, ip=client_ip(request)
    )
    assert sent.message is not None
    await publish(request, sent.events)
    return web.json_response(
        {"message": sent.data or messaging.message_json(ctx, sent.message), "banner": sent.banner},
        status=201 if sent.created else 200,
    )


@routes.post("/api/v1/conversations/{id}/read")
async def mark_read(request: web.Request) -> web.Response:
    p = await require_participant(request)
    data = await read_json(request, {"up_to_message_id"})
    up_to = take(data, "up_to_message_id", int, required=True)
    total, outcome = await messaging.mark_read(request.app[CTX], p, path_int(request, "id"), up_to)
    await api_devices.badge_to_other_devices(request, p)
    await publish(request, outcome.events)
    return web.json_response({"unread_total": total})


@routes.delete("/api/v1/messages/{id}")
async def remove_message(request: web.Request) -> web.Response:
    p = await require_participant(request)
    ctx = request.app[CTX]
    async with in_transaction():  # the removal and its audit row commit together, or neither does
        msg, outcome = await messaging.remove_message(ctx, p, path_int(request, "id", big=True))
        if outcome.events:  # removed now, not a repeat of an earlier removal
            await audit_request(
                request, p, "message.remove", "message", msg.id, {"conversation_id": msg.conversation_id}
            )
    await publish(request, outcome.events)
    return web.json_response({"message": messaging.message_json(ctx, msg)})
