"""The portal's ways in (R18, R4): the links from emails, Instant Sign In, and signing out.

- `/portal/m/{token}` — a notification link: a working one starts a portal session that ends when the link
  would have, and opens its conversation. Any link that does not work gets one friendly page offering
  Instant Sign In, with no hint of whose link it was or why it failed.
- `/portal/sign-in` — says why someone is there when their link or session ran out, and asks for an email
  address; the answer, and the work behind it, are the same whether or not the address is known (see
  `inbox.links.request_signin`). Rate limited per address and requesting client together, and per
  requesting client (gateway.client_address), so nobody else can spend a client's quota.
- `/portal/s/{token}` — an Instant Sign In link: GET shows a "Sign in" button and changes nothing; only the
  button's POST uses the link up, so a mail scanner that opens links cannot burn it. It goes to the page
  the person was sent to sign in from (only one of the portal's own pages, remembered in this browser).
- `/portal/sign-out`.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from gateway.auditing import audit_request
from gateway.keys import CTX, DISPATCHER, HUB
from gateway.limits import POLICIES, client_ip, retry_after
from gateway.portal_session import (
    csrf_failed,
    end_session_cookies,
    form_csrf_ok,
    person_of,
    portal_page,
    portal_principal,
    read_form,
    remember_next,
    safe_next,
    session_csrf_ok,
    session_ended,
    start_session,
    take_next,
)
from gateway.templating import see_other
from inbox import accounts, links, notify, portal

routes = web.RouteTableDef()

# Instant Sign In requests: per (address, client address) and per client address, in any window of an hour.
SIGNIN_PER_ADDRESS = POLICIES["signin_link"]["who"]
SIGNIN_PER_IP = POLICIES["signin_link"]["ip"]


def sign_in_page(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
    ctx = request.app[CTX]
    defaults: dict[str, Any] = {
        "sent": False,
        "error": "",
        "notice": "",
        "next": "",
        "ttl": notify.duration_text(ctx.signin_link_ttl_s),
    }
    headers = context.pop("headers", None)
    return portal_page(request, "portal/sign_in.html", status=status, headers=headers, **(defaults | context))


def _invalid_link(request: web.Request) -> web.Response:
    """One page for every link that does not work: nothing on it depends on the token."""
    ctx = request.app[CTX]
    return portal_page(
        request,
        "portal/link_invalid.html",
        status=404,
        link_ttl=notify.duration_text(ctx.link_ttl_s),
        ttl=notify.duration_text(ctx.signin_link_ttl_s),
    )


# --- links ----------------------------------------------------------------------------------------------


def _link_sign_in_audit(request: web.Request, resolved: links.Resolved, purpose: str) -> Any:
    """The sign-in's audit row, written by `start_session` in the session's own transaction (R24)."""
    return functools.partial(
        audit_request,
        request,
        resolved.participant,
        "auth.link_sign_in",
        "link",
        resolved.link.id,
        {"purpose": purpose},
    )


@routes.get("/portal/m/{token}")
async def notification_link(request: web.Request) -> web.Response:
    resolved = await links.resolve(request.app[CTX], request.match_info["token"], (links.NOTIFY,))
    if resolved is None:
        return _invalid_link(request)
    conversation_id = resolved.link.conversation_id
    resp = see_other(f"/portal/c/{conversation_id}" if conversation_id else "/portal")
    await start_session(request, resp, resolved, audited=_link_sign_in_audit(request, resolved, "notify"))
    return resp


@routes.get("/portal/s/{token}")
async def signin_link(request: web.Request) -> web.Response:
    """Only looks: a mail scanner fetching this changes nothing."""
    resolved = await links.resolve(request.app[CTX], request.match_info["token"], (links.SIGNIN,))
    if resolved is None:
        return _invalid_link(request)
    return portal_page(
        request,
        "portal/sign_in_confirm.html",
        practice_name=await portal.practice_name(resolved.participant),
    )


@routes.post("/portal/s/{token}")
async def use_signin_link(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    form = await read_form(request)
    if not form_csrf_ok(request, form.get("csrf", "")):
        return csrf_failed(request)
    resolved = await links.resolve(ctx, request.match_info["token"], (links.SIGNIN,))
    if resolved is None:
        return _invalid_link(request)
    resp = see_other("/portal")
    resp.headers["Location"] = take_next(request, resp)  # the page they were sent away from, if any
    audited = _link_sign_in_audit(request, resolved, "signin")
    claim = functools.partial(links.use_up, ctx, resolved.link)
    if not await start_session(request, resp, resolved, audited=audited, claim=claim):
        return _invalid_link(request)
    return resp


# --- Instant Sign In ------------------------------------------------------------------------------------


@routes.get("/portal/sign-in")
async def sign_in_form(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ended = session_ended(request)
    notice = ""
    if request.query.get("signed_out"):
        notice = "You are signed out."
    elif ended == "link":
        notice = (
            "Your link has expired: the links in our emails open your messages for "
            f"{notify.duration_text(ctx.link_ttl_s)}. "
            "Enter your email address and we will send you a sign-in link."
        )
    elif ended == "session":
        notice = "Your session has expired. Enter your email address and we will send you a sign-in link."
    return sign_in_page(request, notice=notice, next=safe_next(request.query.get("next")) or "")


@routes.post("/portal/sign-in")
async def sign_in_request(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    form = await read_form(request)
    if not form_csrf_ok(request, form.get("csrf", "")):
        return csrf_failed(request)
    next_path = safe_next(form.get("next")) or ""
    email = links.normalise_email(form.get("email", ""))
    if not email:
        return sign_in_page(request, status=422, error="Enter your email address.", next=next_path)
    # Counted per address *and* requesting client: five requests from a stranger for a client's address
    # must not use up that client's own quota and keep them out of the portal for an hour.
    wait = await retry_after(request, "signin_link", f"{email} from {client_ip(request)}")
    if wait:
        minutes = max(1, round(wait / 60))
        return sign_in_page(
            request,
            status=429,
            error=f"Too many sign-in requests. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            headers={"Retry-After": str(int(wait))},
            next=next_path,
        )
    await links.request_signin(ctx, email)
    request.app[DISPATCHER].wake()
    resp = sign_in_page(request, sent=True, next=next_path)
    # Back to the page they came for once the link is used, in this browser (the same answer for any address).
    remember_next(request, resp, next_path)
    return resp


# --- signing out ----------------------------------------------------------------------------------------


@routes.get("/portal/sign-out")
async def sign_out_page(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    if principal is None:
        return see_other("/portal/sign-in")
    return portal_page(
        request,
        "portal/sign_out.html",
        principal=principal,
        practice_name=await portal.practice_name(person_of(principal)),
    )


@routes.post("/portal/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    resp = see_other("/portal/sign-in?signed_out=1")
    if principal is None:
        end_session_cookies(request, resp)
        return resp
    form = await read_form(request)
    if not session_csrf_ok(principal, form.get("csrf", "")):
        return csrf_failed(request, principal)
    await accounts.revoke_token(request.app[CTX], principal)
    await request.app[HUB].access_changed([person_of(principal).id])  # R27: the page's live socket too
    end_session_cookies(request, resp)
    return resp
