"""Outgoing webhooks (docs/api.md §3, Integration): subscribe, list, stop, and see each delivery's outcome."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import require_api_key
from gateway.keys import CONFIG, CTX
from gateway.routing import API_KEY, BIG_ID_SCHEMA, limit, operation, path_id, query
from gateway.shapes import integration as shapes
from gateway.typed import answer, read_body
from gateway.validation import path_int, query_int
from inbox import webhooks

routes = web.RouteTableDef()

HOOK = [path_id(what="webhook")]


@routes.post("/api/v1/webhooks")
@operation(
    "create_webhook",
    "Subscribe a URL to events; deliveries carry ids only, signed with HMAC-SHA256.",
    tag="integration",
    security=API_KEY,
    body=shapes.NewWebhook,
    ok={201: ("Created; the secret is shown only here.", shapes.NewHook)},
    errors=[403, 409],
    description=f"409 `too_many_webhooks` past {webhooks.MAX_WEBHOOKS_PER_PRACTICE}. 422 "
    "`webhook_url_not_public` for a loopback, private or other non-public address literal or "
    "`localhost` (unless SECUREMSG_WEBHOOK_ALLOW_PRIVATE is set); a name that resolves to one is "
    'refused at delivery, which then fails with `last_error` "refused: not a public address".',
)
async def create_webhook(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    body = await read_body(request, shapes.NewWebhook)
    url, events = body.url, body.events
    hook, secret = await webhooks.create_webhook(
        request.app[CTX],
        principal.practice_id,
        url,
        events,
        allow_private=request.app[CONFIG].webhook_allow_private,
    )
    # The secret is shown once, here; it signs every delivery.
    return answer({**webhooks.webhook_json(hook), "secret": secret}, status=201)


@routes.get("/api/v1/webhooks")
@operation(
    "list_webhooks",
    "The practice's active webhooks.",
    tag="integration",
    security=API_KEY,
    ok={200: ("Webhooks.", shapes.Webhooks)},
    errors=[403],
)
async def list_webhooks(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    hooks = await webhooks.list_webhooks(principal.practice_id)
    return answer({"items": [webhooks.webhook_json(h) for h in hooks]})


@routes.delete("/api/v1/webhooks/{id}")
@operation(
    "delete_webhook",
    "Stop a webhook; its history stays.",
    tag="integration",
    security=API_KEY,
    params=HOOK,
    ok={200: ("Stopped.", shapes.Webhook)},
    errors=[403, 404],
)
async def delete_webhook(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    hook = await webhooks.deactivate(principal.practice_id, path_int(request, "id"))
    return answer(webhooks.webhook_json(hook))


@routes.get("/api/v1/webhooks/{id}/deliveries")
@operation(
    "list_deliveries",
    "Recent deliveries, newest first, with status, attempts and last error.",
    tag="integration",
    security=API_KEY,
    params=[*HOOK, query("before", BIG_ID_SCHEMA, "The `next_before` of the previous page."), limit(50, 200)],
    ok={200: ("A page.", shapes.Deliveries)},
    errors=[403, 404, 422],
)
async def list_deliveries(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    before = query_int(request, "before", lo=1)
    limit = query_int(request, "limit", default=50, lo=1, hi=200) or 50
    page = await webhooks.list_deliveries(
        principal.practice_id, path_int(request, "id"), before=before, limit=limit
    )
    return answer(page)
