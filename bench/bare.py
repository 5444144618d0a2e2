"""`python -m bench.bare PORT [uvloop]`: the ceilings for bench/send.py, bench/fanout.py and bench/variants.py: a bare aiohttp server of the same shape (parse a JSON
body, check a bearer header, answer JSON with 201), with no storage, no auth lookup and no realtime; and a bare
fan-out (`/ws` sockets, `POST /broadcast` writes one frame to every one of them in turn)."""

from __future__ import annotations

import json
import sys
import time

from aiohttp import web


async def send(request: web.Request) -> web.Response:
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return web.json_response({"error": {"code": "unauthenticated"}}, status=401)
    data = await request.json()
    body = data.get("body", "")
    return web.json_response(
        {
            "message": {
                "id": 1,
                "conversation_id": int(request.match_info["id"]),
                "sender_id": 1,
                "body": body,
                "body_html": body,
                "created_at": time.time(),
                "removed": None,
                "client_msg_id": data.get("client_msg_id"),
            },
            "banner": None,
        },
        status=201,
    )


SOCKETS = web.AppKey("sockets", set)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    try:
        await ws.send_str('{"type":"unread","unread_total":0}')
        async for _ in ws:
            pass
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


async def broadcast(request: web.Request) -> web.Response:
    data = await request.json()
    frame = json.dumps({"type": "message.created", "message": data}, separators=(",", ":"))
    for ws in list(request.app[SOCKETS]):
        await ws.send_str(frame)
    return web.json_response(data, status=201)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    if sys.argv[2:] == ["uvloop"]:  # the ceiling with uvloop's event loop (bench/variants.py)
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application()
    app[SOCKETS] = set()
    app.router.add_post("/api/v1/conversations/{id}/messages", send)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/broadcast", broadcast)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
