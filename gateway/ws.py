"""The websocket (API.md §4): one JSON object per frame, only events of the caller's conversations."""

from __future__ import annotations

import json

from aiohttp import WSMsgType, web

from gateway.auth import require_participant
from gateway.keys import HUB
from inbox import messaging

routes = web.RouteTableDef()


@routes.get("/api/v1/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    participant = await require_participant(request)
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    hub = request.app[HUB]
    sub = hub.subscribe(participant.id, ws, request.transport)
    try:
        await ws.send_str(
            json.dumps({"type": "unread", "unread_total": await messaging.unread_total(participant.id)})
        )
        async for msg in ws:
            # The socket is for server → client events; a ping from the client gets a pong.
            if msg.type == WSMsgType.TEXT and msg.data.strip() == '{"type":"ping"}':
                await ws.send_str('{"type":"pong"}')
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        await hub.unsubscribe(sub)
    return ws
