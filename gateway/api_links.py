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
from gateway.routing import NONE, operation
from gateway.shapes import accounts as shapes
from gateway.typed import answer, read_body
from inbox import db, links, messaging
from inbox.errors import Unauthenticated

routes = web.RouteTableDef()


@routes.post("/api/v1/auth/magic")
@operation(
    "exchange_magic_link",
    "Exchange a link token from an email for a bearer token (the client app).",
    description=(
        "A notification link (/portal/m/{token}) is not used up: it works on any number of devices "
        "until it expires or is revoked, and each token ends when the link does. An Instant Sign In "
        "link (/portal/s/{token}) is used up and gives a full session."
    ),
    tag="auth",
    security=NONE,
    body=shapes.MagicBody,
    ok={200: ("A session.", shapes.LinkSession)},
    errors=[401, 429],
)
async def exchange_magic_link(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await enforce(request, "magic")
    token = (await read_body(request, shapes.MagicBody)).token
    resolved = await links.resolve(ctx, token)
    invalid = Unauthenticated("invalid_link", "This link has expired or is no longer valid.")
    if resolved is None:
        raise invalid
    # The link's use, the token and the audit row commit together: a refused row leaves the link unused.
    async with db.transaction():
        if not await links.use(ctx, resolved.link):  # used up meanwhile (an Instant Sign In link)
            raise invalid
        bearer, _ = await links.open_session(ctx, resolved, "app")
        await audit_request(request, resolved.participant, "auth.link_exchange", "link", resolved.link.id)
    return answer(
        {
            "token": bearer,
            "participant": messaging.me_json(resolved.participant),
            "conversation_id": resolved.link.conversation_id,
        }
    )
