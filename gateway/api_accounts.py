"""Accounts (docs/api.md §3): the signed-in person's own password, and asking for a reset link (R25)."""

from __future__ import annotations

from aiohttp import web

from gateway.auditing import audit_request
from gateway.auth import require_principal
from gateway.keys import CTX, DISPATCHER
from gateway.limits import enforce
from gateway.revocation import access_ended
from gateway.routing import NONE, PERSON, operation
from gateway.shapes import accounts as shapes
from gateway.typed import answer, read_body
from inbox import passwords
from inbox.errors import Forbidden
from inbox.kinds import TEAM

routes = web.RouteTableDef()


@routes.put("/api/v1/me/password")
@operation(
    "change_password",
    "Change one's own password (R25).",
    tag="auth",
    security=PERSON,
    body=shapes.PasswordChange,
    ok={200: ("Changed.", shapes.PasswordChanged)},
    errors=[403, 429],
    description="403 `wrong_password` when `current_password` is not right, `team_only` for a "
    "client or the API key; 422 `weak_password`. Every other session, token and trusted device of "
    "the person ends (`ended_sessions` counts the sessions and tokens); the one used stays.",
)
async def change_password(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    me = principal.participant
    if me is None or me.kind != TEAM:
        raise Forbidden("team_only", "Only team members have a password.")
    body = await read_body(request, shapes.PasswordChange)
    current, new = body.current_password, body.new_password
    await enforce(request, "password_change", me.id)

    async def audited(ended: int) -> None:  # in the change's transaction (inbox.passwords)
        await audit_request(
            request, principal, "auth.password_change", "participant", me.id, {"ended": ended}
        )

    ended = await passwords.change(
        request.app[CTX], me, current, new, keep_token_id=principal.token_id, then=audited
    )
    await access_ended(request, me.id)
    return answer(shapes.PasswordChanged.model_construct(ok=True, ended_sessions=ended))


@routes.post("/api/v1/auth/password-reset")
@operation(
    "request_password_reset",
    "Ask for a password reset link by email (R25).",
    tag="auth",
    security=NONE,
    body=shapes.ResetRequest,
    ok={202: ("The same answer for any address.", shapes.ResetAsked)},
    errors=[429],
    description="An active team member with this address gets an email with a link to "
    "`/reset/{token}`: it works once, for 30 minutes, and only the newest one does. Rate limited "
    "per address and per IP.",
)
async def request_password_reset(request: web.Request) -> web.Response:
    """202 whatever the address: whether it belongs to anyone is never told (see inbox.passwords)."""
    email = (await read_body(request, shapes.ResetRequest)).email.strip().lower()[:254]
    await enforce(request, "password_reset", email)
    await passwords.request_reset(request.app[CTX], email)
    request.app[DISPATCHER].wake()
    return answer(
        shapes.ResetAsked.model_construct(
            ok=True, message="If that address belongs to a team account, a reset link is on its way."
        ),
        status=202,
    )
