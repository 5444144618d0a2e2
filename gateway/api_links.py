"""`POST /api/v1/auth/magic {token}`: a link from an email, exchanged for a bearer token for the client app.

Works with a notification link (not used up: the same link opens the portal on the desktop afterwards, or
the app on a second phone; each token ends when the link would have) or an Instant Sign In link (used up; a
full session). Anything else — expired, forged, used up, revoked, or the person's portal access or
messaging turned off (R4) — is the same 401. Every exchange is audited. Rate limited per IP.
"""

from __future__ import annotations

from aiohttp import web

from gateway.auditing import audit_request
from gateway.keys import CTX
from gateway.limits import enforce
from gateway.validation import read_json, take
from inbox import links, messaging
from inbox.errors import Unauthenticated

routes = web.RouteTableDef()


@routes.post("/api/v1/auth/magic")
async def exchange_magic_link(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await enforce(request, "magic")
    data = await read_json(request, {"token"})
    token = take(data, "token", str, required=True)
    resolved = await links.resolve(ctx, token)
    if resolved is None or not await links.use(ctx, resolved.link):
        raise Unauthenticated("invalid_link", "This link has expired or is no longer valid.")
    bearer, _ = await links.open_session(ctx, resolved, "app")
    await audit_request(request, resolved.participant, "auth.link_exchange", "link", resolved.link.id)
    return web.json_response(
        {
            "token": bearer,
            "participant": messaging.me_json(resolved.participant),
            "conversation_id": resolved.link.conversation_id,
        }
    )
