"""Outgoing webhooks (docs/api.md §3, Integration): subscribe, list, stop, and see each delivery's outcome."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import require_api_key
from gateway.keys import CONFIG, CTX
from gateway.validation import path_int, query_int, read_json, take
from inbox import webhooks

routes = web.RouteTableDef()


@routes.post("/api/v1/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    data = await read_json(request, {"url", "events"})
    url = take(data, "url", str, required=True)
    events = take(data, "events", list, required=True, item=str, max_items=len(webhooks.EVENTS))
    hook, secret = await webhooks.create_webhook(
        request.app[CTX],
        principal.practice_id,
        url,
        events,
        allow_private=request.app[CONFIG].webhook_allow_private,
    )
    # The secret is shown once, here; it signs every delivery.
    return web.json_response({**webhooks.webhook_json(hook), "secret": secret}, status=201)


@routes.get("/api/v1/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    hooks = await webhooks.list_webhooks(principal.practice_id)
    return web.json_response({"items": [webhooks.webhook_json(h) for h in hooks]})


@routes.delete("/api/v1/webhooks/{id}")
async def delete_webhook(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    hook = await webhooks.deactivate(principal.practice_id, path_int(request, "id"))
    return web.json_response(webhooks.webhook_json(hook))


@routes.get("/api/v1/webhooks/{id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    before = query_int(request, "before", lo=1)
    limit = query_int(request, "limit", default=50, lo=1, hi=200) or 50
    page = await webhooks.list_deliveries(
        principal.practice_id, path_int(request, "id"), before=before, limit=limit
    )
    return web.json_response(page)
