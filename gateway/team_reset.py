"""The team's password pages (R25): asking for a reset link (`/reset`), and the link itself
(`/reset/{token}`), which sets a new password after a reset request or an invitation.

- `/reset` asks for an email address; the answer, and the work behind it, are the same whether or not the
  address is known (`inbox.passwords.request_reset`). Rate limited per address and per IP like the API.
- `/reset/{token}`: GET shows the form and changes nothing, so a mail scanner that opens links cannot burn
  it; only the form's POST uses it up. Every link that does not work gets one page, with no hint of whose
  link it was or why it failed.

The forms come before any session, so they carry the pre-session CSRF nonce paired with its cookie, like
the sign-in form (gateway.portal_session).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auditing import audit_request
from gateway.cookies import read_cookie, set_cookie
from gateway.keys import CTX, DISPATCHER
from gateway.limits import retry_after
from gateway.portal_session import FORM_COOKIE, form_csrf_ok, read_form
from gateway.revocation import access_ended
from gateway.team_web import redirect, render
from inbox import passwords, signin
from inbox.errors import Invalid
from inbox.notify import duration_text

routes = web.RouteTableDef()


def _page(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    nonce = read_cookie(request, FORM_COOKIE) or ""
    if not form_csrf_ok(request, nonce):
        nonce = signin.new_form_nonce()
    resp = render(request, template, status=status, csrf=nonce, **context)
    set_cookie(request, resp, FORM_COOKIE, nonce, 3600)
    return resp


def _request_page(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
    defaults: dict[str, Any] = {
        "sent": False,
        "error": None,
        "notice": None,
        "ttl": duration_text(passwords.RESET_TTL_S),
    }
    return _page(request, "inbox/reset_request.html", status=status, **(defaults | context))


def _invalid(request: web.Request) -> web.Response:
    """One page for every link that does not work: nothing on it depends on the token."""
    return _request_page(
        request,
        status=404,
        error="This link no longer works: it was used, it expired, or a newer one was sent. "
        "Ask for a new one below.",
    )


# --- asking for a link ---------------------------------------------------------------------------------


@routes.get("/reset")
async def reset_request_form(request: web.Request) -> web.Response:
    return _request_page(request)


@routes.post("/reset")
async def reset_request(request: web.Request) -> web.Response:
    form = await read_form(request)
    if not form_csrf_ok(request, form.get("csrf", "")):
        return _request_page(request, status=403, error="The form had expired; please try again.")
    email = form.get("email", "").strip().lower()[:254]
    if not email:
        return _request_page(request, status=422, error="Enter your email address.")
    wait = await retry_after(request, "password_reset", email)
    if wait:
        minutes = max(1, round(wait / 60))
        resp = _request_page(
            request,
            status=429,
            error=f"Too many requests. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        resp.headers["Retry-After"] = str(int(wait))
        return resp
    await passwords.request_reset(request.app[CTX], email)
    request.app[DISPATCHER].wake()
    return _request_page(request, sent=True)


# --- the link --------------------------------------------------------------------------------------------


def _form(request: web.Request, found: passwords.PasswordLink, **context: Any) -> web.Response:
    context.setdefault("error", None)
    return _page(request, "inbox/reset.html", invitation=found.is_invitation, notice=None, **context)


@routes.get("/reset/{token}")
async def reset_form(request: web.Request) -> web.Response:
    """Only looks: a mail scanner fetching this changes nothing."""
    found = await passwords.resolve(request.app[CTX], request.match_info["token"])
    if found is None:
        return _invalid(request)
    return _form(request, found)


@routes.post("/reset/{token}")
async def set_password(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    form = await read_form(request)
    found = await passwords.resolve(ctx, request.match_info["token"])
    if found is None:
        return _invalid(request)
    if not form_csrf_ok(request, form.get("csrf", "")):
        return _form(request, found, status=403, error="The form had expired; please try again.")
    new = form.get("password", "")[:1000]
    if new != form.get("confirm", "")[:1000]:
        return _form(request, found, status=422, error="The two passwords are not the same.")
    action = "auth.invitation_accepted" if found.is_invitation else "auth.password_reset"

    async def audited(_ended: int) -> None:  # in the reset's transaction (inbox.passwords)
        await audit_request(request, found.member, action, "participant", found.member.id)

    try:
        if not await passwords.set_with_link(ctx, found, new, then=audited):
            return _invalid(request)
    except Invalid as exc:
        return _form(request, found, status=422, error=exc.message)
    await access_ended(request, found.member.id)
    return redirect("/?notice=password_set")
