"""Accounts (docs/api.md §3): the signed-in person's own password, and asking for a reset link (R25)."""

from __future__ import annotations

from aiohttp import web

from gateway.auditing import audit_request
from gateway.auth import require_principal
from gateway.keys import CTX, DISPATCHER
from gateway.limits import enforce
from gateway.revocation import access_ended
from gateway.validation import read_json, take
from inbox import passwords
from inbox.errors import Forbidden
from inbox.kinds import TEAM

routes = web.RouteTableDef()


@routes.put("/api/v1/me/password")
async def change_password(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    me = principal.participant
    if me is None or me.kind != TEAM:
        raise Forbidden("team_only", "Only team members have a password.")
    data = await read_json(request, {"current_password", "new_password"})
    current = take(data, "current_password", str, required=True)
    new = take(data, "new_password", str, required=True)
    await enforce(request, "password_change", me.id)

    async def audited(ended: int) -> None:  # in the change's transaction (inbox.passwords)
        await audit_request(
            request, principal, "auth.password_change", "participant", me.id, {"ended": ended}
        )

    ended = await passwords.change(
        request.app[CTX], me, current, new, keep_token_id=principal.token_id, then=audited
    )
    await access_ended(request, me.id)
    return web.json_response({"ok": True, "ended_sessions": ended})


@routes.post("/api/v1/auth/password-reset")
async def request_password_reset(request: web.Request) -> web.Response:
    """202 whatever the address: whether it belongs to anyone is never told (see inbox.passwords)."""
    data = await read_json(request, {"email"})
    email = take(data, "email", str, required=True).strip().lower()[:254]
    await enforce(request, "password_reset", email)
    await passwords.request_reset(request.app[CTX], email)
    request.app[DISPATCHER].wake()
    return web.json_response(
        {"ok": True, "message": "If that address belongs to a team account, a reset link is on its way."},
        status=202,
    )
