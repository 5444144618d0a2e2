"""The team's sign-in (password, then the TOTP code when enrolled), sign-out and TOTP enrolment pages.

Before there is a session, the sign-in forms carry a CSRF nonce that must match a cookie (double submit),
so another site cannot sign a browser in to an account of its choosing. It is the portal's pre-session
cookie (gateway.portal_session): one such cookie per browser, whichever sign-in page set it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

import segno
from aiohttp import web
from markupsafe import Markup

from gateway.auditing import audit_request, audit_throttled_sign_in
from gateway.auth import SESSION_COOKIE
from gateway.cookies import del_cookie, read_cookie, set_cookie
from gateway.keys import CTX, HUB
from gateway.limits import client_ip, enforce
from gateway.portal_session import FORM_COOKIE, form_csrf_ok
from gateway.team_web import (
    TeamSession,
    chrome,
    csrf_ok,
    form_text,
    redirect,
    render,
    safe_next,
    set_session_cookie,
    team_session,
    to_sign_in,
)
from inbox import accounts, audit, db, signin
from inbox.errors import Conflict, Forbidden, Invalid, SlowDown, Unauthenticated

if TYPE_CHECKING:
    from inbox.models import Participant

routes = web.RouteTableDef()

PENDING_COOKIE = "securemsg_signin"  # between the password and the code step
PENDING_PATH = "/sign-in"
# A browser that signed in before keeps a device token (accounts.device_token_for) for its address: its
# sign-ins are throttled on their own and never meet the account's lockout, so nobody can keep a person
# out of their own browser by failing ten times every 15 minutes (docs/security.md).
DEVICE_COOKIE = "securemsg_device"
DEVICE_COOKIE_MAX_AGE_S = 180 * 86400

_NOTICES = {
    "signed_out": "You have signed out.",
    "expired": "Your session has ended. Please sign in again.",
    "restart": "That sign-in took too long. Please start again.",
    "password_set": "Your new password is set. Sign in with it.",
}


def _form_page(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    error: str | None = None,
    next_path: str | None = None,
    **context: object,
) -> web.Response:
    nonce = read_cookie(request, FORM_COOKIE) or ""
    if not form_csrf_ok(request, nonce):  # none yet, or not one this server makes
        nonce = signin.new_form_nonce()
    notice = _NOTICES.get(request.query.get("notice", ""))
    resp = render(
        request,
        template,
        status=status,
        csrf=nonce,
        error=error,
        notice=notice,
        next=next_path or safe_next(request.query.get("next")),
        **context,
    )
    set_cookie(request, resp, FORM_COOKIE, nonce, 3600)
    return resp


def _slow_down(request: web.Request, exc: SlowDown, template: str, next_path: str) -> web.Response:
    minutes = max(1, -(-exc.retry_after // 60))
    error = f"Too many sign-in attempts. Please try again in {minutes} minute{'s' if minutes > 1 else ''}."
    resp = _form_page(request, template, status=429, error=error, email="", next_path=next_path)
    resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


async def _trusted(request: web.Request, email: str, practice_id: int | None = None) -> int | None:
    """The account with this address that this browser's device token marks as trusted, if any."""
    return await accounts.trusted_device_member(
        request.app[CTX], email, read_cookie(request, DEVICE_COOKIE), practice_id
    )


async def _throttle(request: web.Request, email: str, practice_id: int | None = None) -> int | None:
    """The sign-in limits (issue 6's limiter, shared with the API): per device for a trusted browser, else
    per address tried; per IP either way. The account this browser is trusted for, if any."""
    trusted = await _trusted(request, email, practice_id)
    if trusted is not None:
        await enforce(request, "login_device", read_cookie(request, DEVICE_COOKIE))
        return trusted
    await enforce(request, "login", email)
    return None


def _practice_choice(form_value: str) -> int | None:
    """The practice picked on the sign-in form, when one address opens accounts at several."""
    return int(form_value) if form_value.isdigit() and 0 < len(form_value) <= 10 else None


async def _signed_in(request: web.Request, member: Participant, next_path: str) -> web.Response:
    ctx = request.app[CTX]
    async with db.transaction():  # the session and its sign-in's audit row commit together, or neither does
        token = await signin.start_session(ctx, member, read_cookie(request, SESSION_COOKIE))
        await audit.record_sign_in(ctx, member.email, member, None, client_ip(request))
    resp = redirect(next_path)
    set_session_cookie(request, resp, token)
    del_cookie(request, resp, PENDING_COOKIE, PENDING_PATH)
    if not accounts.device_token_valid(ctx, member, read_cookie(request, DEVICE_COOKIE)):
        set_cookie(
            request,
            resp,
            DEVICE_COOKIE,
            accounts.device_token_for(ctx, member),
            DEVICE_COOKIE_MAX_AGE_S,
        )
    return resp


# --- password ----------------------------------------------------------------------------------------


@routes.get("/")
async def sign_in_page(request: web.Request) -> web.Response:
    if await team_session(request) is not None:
        return redirect(safe_next(request.query.get("next")))
    resp = _form_page(request, "inbox/sign_in.html", email="")
    if read_cookie(request, SESSION_COOKIE):  # a session that has ended: forget it
        del_cookie(request, resp, SESSION_COOKIE)
    return resp


@routes.post("/")
async def sign_in(request: web.Request) -> web.Response:
    form = await request.post()
    next_path = safe_next(form_text(form, "next", 500))
    email = form_text(form, "email", 254).strip()
    if not form_csrf_ok(request, form_text(form, "csrf", 200)):
        error = "The form had expired; please try again."
        return _form_page(
            request, "inbox/sign_in.html", status=403, error=error, email=email, next_path=next_path
        )
    ctx = request.app[CTX]
    practice_id = _practice_choice(form_text(form, "practice_id", 20))
    try:
        # The same limits as the API's sign-in: per address tried (or per trusted device) and per IP.
        trusted = await _throttle(request, email, practice_id)
    except SlowDown as exc:
        await audit_throttled_sign_in(request, email)
        return _slow_down(request, exc, "inbox/sign_in.html", next_path)
    try:
        step = await signin.check_password(
            ctx, email, form_text(form, "password", 256), trusted_member_id=trusted, practice_id=practice_id
        )
    except Unauthenticated as exc:
        # A wrong password, an unknown address, a locked or a deactivated account: one page for all.
        await audit.record_sign_in(ctx, email, None, exc.code, client_ip(request))
        return _form_page(
            request, "inbox/sign_in.html", status=401, error=exc.message, email=email, next_path=next_path
        )
    except Conflict as exc:
        # The password opens accounts at several practices: the same form again, with a choice.
        return _form_page(
            request,
            "inbox/sign_in.html",
            status=409,
            error=exc.message,
            email=email,
            next_path=next_path,
            practices=exc.extra.get("practices", []),
        )
    if not step.needs_code:
        return await _signed_in(request, step.member, next_path)
    resp = redirect("/sign-in/code?" + urlencode({"next": next_path}))
    set_cookie(
        request,
        resp,
        PENDING_COOKIE,
        signin.pending_signin_ticket(request.app[CTX], step.member),
        signin.PENDING_SIGNIN_TTL_S,
        path=PENDING_PATH,
        samesite="Strict",
    )
    return resp


# --- the code ----------------------------------------------------------------------------------------


def _restart(request: web.Request) -> web.Response:
    resp = redirect("/?" + urlencode({"notice": "restart", "next": safe_next(request.query.get("next"))}))
    del_cookie(request, resp, PENDING_COOKIE, PENDING_PATH)
    return resp


@routes.get("/sign-in/code")
async def code_page(request: web.Request) -> web.Response:
    if (
        signin.read_pending_signin(request.app[CTX], read_cookie(request, PENDING_COOKIE, PENDING_PATH))
        is None
    ):
        return _restart(request)
    return _form_page(request, "inbox/sign_in_code.html")


@routes.post("/sign-in/code")
async def sign_in_code(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    form = await request.post()
    member_id = signin.read_pending_signin(ctx, read_cookie(request, PENDING_COOKIE, PENDING_PATH))
    if member_id is None:
        return _restart(request)
    next_path = safe_next(form_text(form, "next", 500))
    if not form_csrf_ok(request, form_text(form, "csrf", 200)):
        error = "The form had expired; please try again."
        return _form_page(request, "inbox/sign_in_code.html", status=403, error=error, next_path=next_path)
    pending = await signin.pending_member(member_id)
    if pending is None:
        return _restart(request)
    try:
        trusted = await _throttle(request, pending.email, pending.practice_id) == pending.id
    except SlowDown as exc:
        await audit_throttled_sign_in(request, pending.email)
        return _slow_down(request, exc, "inbox/sign_in_code.html", next_path)
    try:
        member = await signin.check_code(ctx, pending, form_text(form, "code", 20), trusted_device=trusted)
    except Unauthenticated as exc:
        await audit.record_sign_in(ctx, pending.email, None, exc.code, client_ip(request))
        if exc.code == "invalid_otp":
            error = "That code is not right. Check your authenticator app and try again."
            return _form_page(
                request, "inbox/sign_in_code.html", status=401, error=error, next_path=next_path
            )
        resp = _form_page(
            request, "inbox/sign_in.html", status=401, error=exc.message, email="", next_path=next_path
        )
        del_cookie(request, resp, PENDING_COOKIE, PENDING_PATH)
        return resp
    return await _signed_in(request, member, next_path)


async def _expired(request: web.Request, session: TeamSession) -> web.Response:
    text = "The page had expired. Go back, reload it and try again."
    top = await chrome(request, session)
    return render(request, "inbox/problem.html", status=403, **top, title="Please try again", text=text)


# --- sign out ----------------------------------------------------------------------------------------


@routes.post("/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is not None:
        form = await request.post()
        if not csrf_ok(session.csrf, form):
            return await _expired(request, session)
        async with db.transaction():  # the sign-out and its audit row commit together, or neither does
            await accounts.revoke_token(request.app[CTX], session.principal)
            await audit_request(request, session.principal, "auth.logout")
        await request.app[HUB].access_changed([session.member.id])  # R27: the inbox's live socket too
    resp = redirect("/?notice=signed_out")
    del_cookie(request, resp, SESSION_COOKIE)
    return resp


# --- TOTP enrolment ----------------------------------------------------------------------------------


def _qr(uri: str) -> Markup:
    svg = segno.make(uri, error="m").svg_inline(scale=5, border=2, svgclass="qr", omitsize=True)
    return Markup(svg)  # noqa: S704 - segno's own SVG output: paths only, no text from the user


async def _enrolment_page(
    request: web.Request, session: TeamSession, enrolment: signin.Enrolment, *, error: str | None, status: int
) -> web.Response:

    return render(
        request,
        "inbox/two_step.html",
        status=status,
        **await chrome(request, session),
        enrolment=enrolment,
        qr=_qr(enrolment.uri),
        error=error,
        enabled=session.member.totp_enabled,
        done=False,
    )


@routes.get("/settings/two-step")
async def two_step_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    if session.member.totp_enabled and request.query.get("new") != "1":
        return render(
            request,
            "inbox/two_step.html",
            **await chrome(request, session),
            enabled=True,
            done=request.query.get("done") == "1",
            enrolment=None,
            qr=None,
            error=None,
        )
    enrolment = await signin.new_enrolment(request.app[CTX], session.member, session.principal.token_id)
    return await _enrolment_page(request, session, enrolment, error=None, status=200)


@routes.post("/settings/two-step")
async def two_step_confirm(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    ctx = request.app[CTX]
    form = await request.post()
    if not csrf_ok(session.csrf, form):
        return await _expired(request, session)
    try:
        enrolment = await signin.pending_enrolment(
            ctx,
            session.member,
            session.principal.token_id,
            form_text(form, "secret", 64),
            form_text(form, "expires", 20),
            form_text(form, "signature", 64),
        )
    except Invalid:
        fresh = await signin.new_enrolment(ctx, session.member, session.principal.token_id)
        return await _enrolment_page(
            request, session, fresh, error="The set-up had expired. Scan this new code.", status=422
        )
    try:
        # The same limits as a sign-in: the password (and current code) are checked again here (R30).
        await _throttle(request, session.member.email)
    except SlowDown as exc:
        error = "Too many attempts. Please try again in a few minutes."
        resp = await _enrolment_page(request, session, enrolment, error=error, status=429)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    async def audited() -> None:  # in the enrolment's transaction (inbox.signin)
        await audit_request(request, session.member, "totp.enrol", "participant", session.member.id)

    try:
        await signin.confirm_enrolment(
            ctx,
            session.member,
            enrolment,
            form_text(form, "code", 20),
            password=form_text(form, "password", 256),
            current_code=form_text(form, "current_code", 20) or None,
            then=audited,
        )
    except Invalid as exc:
        return await _enrolment_page(request, session, enrolment, error=exc.message, status=422)
    except Forbidden as exc:
        return await _enrolment_page(request, session, enrolment, error=exc.message, status=403)
    return redirect("/settings/two-step?done=1")
