"""The websocket (docs/api.md §4): one JSON object per frame, only events of the caller's conversations."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from gateway.auth import bearer_token, participant_from, require_principal
from gateway.keys import CONFIG, HUB
from gateway.routing import PERSON, operation
from inbox import messaging
from inbox.errors import Forbidden

routes = web.RouteTableDef()


@routes.get("/api/v1/ws")
@operation(
    "websocket",
    "The websocket (docs/api.md §4): one JSON event per frame.",
    tag="realtime",
    security=PERSON,
    ok={101: ("Switching protocols.", None)},
    errors=[400, 403],
)
async def websocket(request: web.Request) -> web.WebSocketResponse:
    if bearer_token(request) is None and not _same_origin(request):
        # A cookie-authenticated socket opened by another site's page would read this person's events.
        raise Forbidden("cross_origin", "Open the websocket from this site's pages, or with a bearer token.")
    principal = await require_principal(request)
    participant = participant_from(request, principal)
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    hub = request.app[HUB]
    # The socket remembers its token: when access ends (R27), the hub closes it with 4401.
    sub = hub.subscribe(participant.id, ws, request.transport, token_id=principal.token_id)
    try:
        if not await hub.admit(sub):
            return ws  # being closed with 4401 by its writer, which `unsubscribe` waits for
        await ws.send_str(
            json.dumps({"type": "unread", "unread_total": await messaging.unread_total(participant.id)})
        )
        async for msg in ws:
            # The socket is for server → client events; a ping from the client gets a pong.
            if msg.type == WSMsgType.TEXT and msg.data.strip() == '{"type":"ping"}':
                if not ws.closed:  # not after the hub began closing it (R27)
                    await ws.send_str('{"type":"pong"}')
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        await hub.unsubscribe(sub)
    return ws


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser page (browsers always send Origin on a websocket handshake)
    host = urlsplit(origin).netloc
    return bool(host) and host in (request.host, urlsplit(request.app[CONFIG].public_url).netloc)
