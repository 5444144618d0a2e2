"""The signed-in team member's account page (`/account`, the name in the top bar): their own password
(R25), the page form of `PUT /api/v1/me/password`, and where two-step sign-in is set up or replaced (the
steps themselves are `/settings/two-step`, gateway.team_signin). On a password change the current session
stays; every other one, and every trusted device, ends.

`/settings/password` was the password page's first address; it leads here, and its form's POST still works."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auditing import audit_request
from gateway.keys import CTX
from gateway.limits import enforce
from gateway.revocation import access_ended
from gateway.team_web import (
    TeamSession,
    chrome,
    csrf_ok,
    form_text,
    redirect,
    render,
    team_session,
    to_sign_in,
)
from inbox import passwords
from inbox.errors import Forbidden, Invalid, SlowDown

routes = web.RouteTableDef()


async def _page(
    request: web.Request, session: TeamSession, *, status: int = 200, **context: Any
) -> web.Response:
    context = {"done": False, "error": None} | context
    return render(request, "inbox/account.html", status=status, **await chrome(request, session), **context)


@routes.get("/account")
async def account_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    return await _page(request, session, done=request.query.get("done") == "password")


@routes.get("/settings/password")
async def password_page(request: web.Request) -> web.Response:
    return redirect("/account#password")


@routes.post("/account")
@routes.post("/settings/password")
async def change_password(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    form = await request.post()
    if not csrf_ok(session.csrf, form):
        return await _page(request, session, status=403, error="The page had expired; please try again.")
    new = form_text(form, "password", 1000)
    if new != form_text(form, "confirm", 1000):
        return await _page(request, session, status=422, error="The two new passwords are not the same.")
    member = session.member

    async def audited(ended: int) -> None:  # in the change's transaction (inbox.passwords)
        await audit_request(
            request, member, "auth.password_change", "participant", member.id, {"ended": ended}
        )

    try:
        await enforce(request, "password_change", member.id)
        await passwords.change(
            request.app[CTX],
            member,
            form_text(form, "current", 1000),
            new,
            keep_token_id=session.principal.token_id,
            then=audited,
        )
    except SlowDown as exc:
        resp = await _page(request, session, status=429, error="Too many tries. Please wait a few minutes.")
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except (Forbidden, Invalid) as exc:
        return await _page(request, session, status=exc.status, error=exc.message)
    await access_ended(request, member.id)
    return redirect("/account?done=password")
