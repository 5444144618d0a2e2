"""The client portal (API.md §6, R16–R18, R20): pages for clients and their contacts.

- `/portal/m/{token}` — the link from a notification email: a working link starts a portal session (a
  "session" AuthToken with a CSRF token, in the HttpOnly, SameSite=Lax cookie PORTAL_COOKIE, Secure when the
  public URL is https) that ends when the link would have, and opens the conversation. Any link that does not
  work gets one friendly page offering Instant Sign In, with no hint of whose link it was.
- `/portal/sign-in` — asks for an email address; the answer is the same whether or not it is known, and the
  work done is the same (see `inbox.links.request_signin`). Rate limited per address and per IP.
- `/portal/s/{token}` — an Instant Sign In link: GET shows a "Sign in" button and changes nothing; only the
  button's POST uses the link up, so a mail scanner that opens links cannot burn it.
- `/portal`, `/portal/c/{id}` — the person's conversations; one conversation with a reply box, the away
  banner (R20) that cannot be dismissed, "(Away)" next to an away team member, removed messages shown as
  removed. Showing the newest messages marks them read. A reply goes through `inbox.messaging` like any
  other and reaches the others' websockets.
- `/portal/sign-out`.

Every form carries a CSRF token: the session's for signed-in pages, and a random one paired with a
short-lived cookie for the sign-in forms that come before a session.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import emoji
from aiohttp import web

from gateway.api_messaging import publish
from gateway.auth import PORTAL_COOKIE
from gateway.keys import CONFIG, CTX, DISPATCHER, RATE_LIMITER
from gateway.templating import render_page, see_other
from inbox import accounts, links, messaging, notify, portal
from inbox.accounts import Principal
from inbox.errors import DomainError, Invalid, NotFound
from inbox.models import TEAM, Participant
from portal_links import new_token

routes = web.RouteTableDef()

FORM_COOKIE = "securemsg_form"
# Instant Sign In requests: per address and per IP, in any window of an hour.
SIGNIN_PER_ADDRESS = (5, 3600.0)
SIGNIN_PER_IP = (20, 3600.0)


# --- sessions and CSRF ---------------------------------------------------------------------------------


def _set_cookie(request: web.Request, resp: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request.app[CONFIG].cookie_secure,
    )


async def portal_principal(request: web.Request) -> Principal | None:
    """The signed-in client or contact, from the portal cookie; None if there is none that works (also for a
    person whose messaging or portal access was turned off: R4)."""
    token = request.cookies.get(PORTAL_COOKIE)
    if not token:
        return None
    principal = await accounts.resolve_token(request.app[CTX], token)
    if (
        principal is None
        or principal.kind != "session"
        or principal.participant is None
        or principal.participant.kind == TEAM
        or not await links.may_use_portal(principal.participant)
    ):
        return None
    return principal


def _person(principal: Principal) -> Participant:
    assert principal.participant is not None
    return principal.participant


async def _start_session(request: web.Request, resp: web.StreamResponse, resolved: links.Resolved) -> None:
    ctx = request.app[CTX]
    previous = await portal_principal(request)
    if previous is not None:  # a session of whoever used this browser before: it ends here
        await accounts.revoke_token(ctx, previous)
    token, row = await links.open_session(ctx, resolved, "session")
    assert row.expires_at is not None
    max_age = max(1, int((row.expires_at - ctx.clock.now()).total_seconds()))
    _set_cookie(request, resp, PORTAL_COOKIE, token, max_age)


def _session_csrf_ok(principal: Principal, sent: str) -> bool:
    expected = principal.csrf_token or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def _form_token(request: web.Request) -> str:
    token = request.cookies.get(FORM_COOKIE, "")
    return token if 20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum() else ""


def _with_form_token(request: web.Request) -> tuple[str, bool]:
    """The pre-session CSRF token for this browser, and whether it is new (to be set as a cookie)."""
    token = _form_token(request)
    return (token, False) if token else (new_token(24), True)


def _form_csrf_ok(request: web.Request, sent: str) -> bool:
    cookie = _form_token(request)
    return bool(cookie) and hmac.compare_digest(sent.encode(), cookie.encode())


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _ip(request: web.Request) -> str:
    return request.remote or "unknown"


# --- shared page pieces --------------------------------------------------------------------------------


def _page(
    request: web.Request,
    name: str,
    *,
    status: int = 200,
    principal: Principal | None = None,
    practice_name: str = "",
    headers: dict[str, str] | None = None,
    **context: Any,
) -> web.Response:
    base: dict[str, Any] = {
        "practice_name": practice_name,
        "signed_in": principal is not None,
        "csrf": principal.csrf_token if principal is not None else "",
        "form_csrf": "",
    }
    new_cookie = False
    if principal is None:
        base["form_csrf"], new_cookie = _with_form_token(request)
    resp = render_page(name, base | context, status=status, headers=headers)
    if new_cookie:
        _set_cookie(request, resp, FORM_COOKIE, base["form_csrf"], 3600)
    return resp


def _sign_in_page(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
    ctx = request.app[CTX]
    defaults: dict[str, Any] = {
        "sent": False,
        "error": "",
        "notice": "",
        "ttl": notify.duration_text(ctx.signin_link_ttl_s),
    }
    headers = context.pop("headers", None)
    return _page(request, "portal/sign_in.html", status=status, headers=headers, **(defaults | context))


def _invalid_link(request: web.Request) -> web.Response:
    """One page for every link that does not work: nothing on it depends on the token."""
    ctx = request.app[CTX]
    return _page(
        request,
        "portal/link_invalid.html",
        status=404,
        link_ttl=notify.duration_text(ctx.link_ttl_s),
        ttl=notify.duration_text(ctx.signin_link_ttl_s),
    )


def _csrf_failed(request: web.Request, principal: Principal | None = None) -> web.Response:
    return _page(request, "portal/form_expired.html", status=403, principal=principal)


# --- links ---------------------------------------------------------------------------------------------


@routes.get("/portal/m/{token}")
async def notification_link(request: web.Request) -> web.Response:
    resolved = await links.resolve(request.app[CTX], request.match_info["token"], (links.NOTIFY,))
    if resolved is None:
        return _invalid_link(request)
    conversation_id = resolved.link.conversation_id
    resp = see_other(f"/portal/c/{conversation_id}" if conversation_id else "/portal")
    await _start_session(request, resp, resolved)
    return resp


@routes.get("/portal/s/{token}")
async def signin_link(request: web.Request) -> web.Response:
    """Only looks: a mail scanner fetching this changes nothing."""
    resolved = await links.resolve(request.app[CTX], request.match_info["token"], (links.SIGNIN,))
    if resolved is None:
        return _invalid_link(request)
    return _page(
        request,
        "portal/sign_in_confirm.html",
        practice_name=await portal.practice_name(resolved.participant),
    )


@routes.post("/portal/s/{token}")
async def use_signin_link(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    form = await _form(request)
    if not _form_csrf_ok(request, form.get("csrf", "")):
        return _csrf_failed(request)
    resolved = await links.resolve(ctx, request.match_info["token"], (links.SIGNIN,))
    if resolved is None or not await links.use_up(ctx, resolved.link):
        return _invalid_link(request)
    resp = see_other("/portal")
    await _start_session(request, resp, resolved)
    return resp


# --- Instant Sign In -----------------------------------------------------------------------------------


@routes.get("/portal/sign-in")
async def sign_in_form(request: web.Request) -> web.Response:
    notice = "You are signed out." if request.query.get("signed_out") else ""
    return _sign_in_page(request, notice=notice)


async def _limited(request: web.Request, key: str, rule: tuple[int, float]) -> float:
    return await request.app[RATE_LIMITER].check(key, rule[0], rule[1])


@routes.post("/portal/sign-in")
async def sign_in_request(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    form = await _form(request)
    if not _form_csrf_ok(request, form.get("csrf", "")):
        return _csrf_failed(request)
    email = links.normalise_email(form.get("email", ""))
    if not email:
        return _sign_in_page(request, status=422, error="Enter your email address.")
    address_key = hmac.new(ctx.secret, email.encode(), hashlib.sha256).hexdigest()[:32]
    wait = await _limited(request, f"portal-signin:ip:{_ip(request)}", SIGNIN_PER_IP)
    if not wait:
        wait = await _limited(request, f"portal-signin:address:{address_key}", SIGNIN_PER_ADDRESS)
    if wait:
        minutes = max(1, round(wait / 60))
        return _sign_in_page(
            request,
            status=429,
            error=f"Too many sign-in requests. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            headers={"Retry-After": str(int(wait))},
        )
    await links.request_signin(ctx, email)
    request.app[DISPATCHER].wake()
    return _sign_in_page(request, sent=True)


# --- signed-in pages -----------------------------------------------------------------------------------


def _names(participants: list[dict[str, Any]], me: int) -> str:
    others = [p for p in participants if p["id"] != me]
    return ", ".join(p["name"] + (" (Away)" if p["away"] else "") for p in others) or "Only you"


def _preview(message: dict[str, Any] | None) -> str:
    if message is None:
        return "No messages yet"
    if message["removed"] is not None or message["body"] is None:
        return "This message was removed"
    return str(emoji.emojize(" ".join(message["body"].split()), language="alias"))


@routes.get("/portal")
async def home(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    if principal is None:
        return see_other("/portal/sign-in")
    person = _person(principal)
    try:
        page = await messaging.list_conversations(
            request.app[CTX], person, request.query.get("cursor") or None, 30
        )
    except Invalid:
        return see_other("/portal")
    items = [
        {
            "id": c["id"],
            "names": _names(c["participants"], person.id),
            "unread_count": c["unread_count"],
            "last_activity_at": c["last_activity_at"],
            "preview": _preview(c["last_message"]),
            "banner": c["banner"],
        }
        for c in page["items"]
    ]
    return _page(
        request,
        "portal/conversations.html",
        principal=principal,
        practice_name=await portal.practice_name(person),
        items=items,
        next_cursor=page["next_cursor"],
    )


async def _conversation_page(
    request: web.Request,
    principal: Principal,
    conversation_id: int,
    *,
    status: int = 200,
    error: str = "",
    draft: str = "",
) -> web.Response:
    ctx = request.app[CTX]
    person = _person(principal)
    detail = await messaging.conversation_detail(person, conversation_id)
    before = request.query.get("before", "")
    before_id = int(before) if before.isdigit() and len(before) < 19 else None
    page = await messaging.list_messages(ctx, person, conversation_id, before_id, 50)
    names = {p["id"]: p["name"] + (" (Away)" if p["away"] else "") for p in detail["participants"]}
    items = [
        {
            "id": m["id"],
            "sender": "You" if m["sender_id"] == person.id else names.get(m["sender_id"], "Someone"),
            "mine": m["sender_id"] == person.id,
            "removed": m["removed"] is not None,
            "body_html": m["body_html"],
            "created_at": m["created_at"],
        }
        for m in page["items"]
    ]
    if before_id is None and items:
        seen = await portal.read_on_view(ctx, person, conversation_id, items[-1]["id"])
        await publish(request, seen.events)
    return _page(
        request,
        "portal/conversation.html",
        status=status,
        principal=principal,
        practice_name=await portal.practice_name(person),
        conversation_id=conversation_id,
        title=_names(detail["participants"], person.id),
        banner=detail["banner"],
        messages=items,
        next_before=page["next_before"],
        is_latest=before_id is None,
        error=error,
        draft=draft,
        client_msg_id=new_token(16),
        max_body=messaging.MAX_BODY,
    )


def _conversation_id(request: web.Request) -> int | None:
    raw = request.match_info["id"]
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _not_found(request: web.Request, principal: Principal) -> web.Response:
    return _page(request, "portal/not_found.html", status=404, principal=principal)


@routes.get("/portal/c/{id}")
async def conversation(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    if principal is None:
        return see_other("/portal/sign-in")
    conversation_id = _conversation_id(request)
    try:
        if conversation_id is None:
            raise NotFound("conversation")
        return await _conversation_page(request, principal, conversation_id)
    except NotFound:
        return _not_found(request, principal)


@routes.post("/portal/c/{id}")
async def reply(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    if principal is None:
        return see_other("/portal/sign-in")
    conversation_id = _conversation_id(request)
    if conversation_id is None:
        return _not_found(request, principal)
    form = await _form(request)
    if not _session_csrf_ok(principal, form.get("csrf", "")):
        return _csrf_failed(request, principal)
    body = form.get("body", "")
    client_msg_id = form.get("client_msg_id", "")[:100] or None
    ctx = request.app[CTX]
    try:
        sent = await messaging.send_message(ctx, _person(principal), conversation_id, body, client_msg_id)
    except NotFound:
        return _not_found(request, principal)
    except DomainError as exc:  # empty, too long, not allowed (R8): say so, and keep what was typed
        return await _conversation_page(
            request, principal, conversation_id, status=exc.status, error=exc.message, draft=body
        )
    await publish(request, sent.events)
    request.app[DISPATCHER].wake()
    message_id = sent.message.id if sent.message else 0
    return see_other(f"/portal/c/{conversation_id}#m{message_id}")


@routes.get("/portal/sign-out")
async def sign_out_page(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    if principal is None:
        return see_other("/portal/sign-in")
    return _page(
        request,
        "portal/sign_out.html",
        principal=principal,
        practice_name=await portal.practice_name(_person(principal)),
    )


@routes.post("/portal/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    resp = see_other("/portal/sign-in?signed_out=1")
    if principal is None:
        resp.del_cookie(PORTAL_COOKIE, path="/")
        return resp
    form = await _form(request)
    if not _session_csrf_ok(principal, form.get("csrf", "")):
        return _csrf_failed(request, principal)
    await accounts.revoke_token(request.app[CTX], principal)
    resp.del_cookie(PORTAL_COOKIE, path="/")
    return resp
