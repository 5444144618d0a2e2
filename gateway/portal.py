"""The client portal's pages (docs/api.md §6, R14, R15, R20): a client's or contact's conversations, one
conversation with its reply box, server-rendered.

Messages show as written (emoji rendered, R13), removed ones as "This message was removed" (R14); the away
banner (R20) sits above the reply box and cannot be dismissed, and "(Away)" follows an away team member's
name. Showing the newest messages marks them read (R15), but only for a request from the portal itself:
a same-origin GET, or the page's script posting to `/portal/c/{id}/read` with the CSRF token. A reply
goes through `inbox.messaging` like any other message, so the others see it on their websockets and the
outbox tells them by email. How a browser gets a portal session is in `gateway.portal_signin`.
"""

from __future__ import annotations

from typing import Any

import emoji
from aiohttp import web

from gateway.api_messaging import publish
from gateway.auditing import audit_access
from gateway.keys import CTX, DISPATCHER
from gateway.limits import client_ip
from gateway.portal_session import (
    csrf_failed,
    person_of,
    portal_page,
    portal_principal,
    read_form,
    session_csrf_ok,
    to_sign_in,
)
from gateway.templating import see_other
from inbox import directory, messaging, portal
from inbox.accounts import Principal
from inbox.errors import DomainError, Invalid, NotFound
from inbox.ids import id_from_text
from portal_links import new_token

routes = web.RouteTableDef()


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
        return to_sign_in(request)
    person = person_of(principal)
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
    return portal_page(
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
    mark_read: bool = False,
) -> web.Response:
    ctx = request.app[CTX]
    person = person_of(principal)
    detail = await messaging.conversation_detail(person, conversation_id)
    before = request.query.get("before", "")
    before_id = id_from_text(before)
    page = await messaging.list_messages(ctx, person, conversation_id, before_id, 50)
    await audit_access(request, person, "conversation.open", conversation_id)
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
    people = await directory.people_by_id([p["id"] for p in detail["participants"]])
    blocked = await portal.blocked_reason(person, conversation_id, people)
    banner = detail["banner"]
    if banner is not None:  # emoji codes show as emoji, as in messages (R13); the text stays escaped
        banner = banner | {"text": str(emoji.emojize(banner["text"], language="alias"))}
    if mark_read and before_id is None and items:
        seen = await portal.read_on_view(ctx, person, conversation_id, items[-1]["id"])
        await publish(request, seen.events)
    return portal_page(
        request,
        "portal/conversation.html",
        status=status,
        principal=principal,
        practice_name=await portal.practice_name(person),
        conversation_id=conversation_id,
        title=_names(detail["participants"], person.id),
        banner=banner,
        blocked=blocked,
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
    return id_from_text(raw)


def _not_found(request: web.Request, principal: Principal) -> web.Response:
    return portal_page(request, "portal/not_found.html", status=404, principal=principal)


@routes.get("/portal/c/{id}")
async def conversation(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    if principal is None:
        return to_sign_in(request)
    conversation_id = _conversation_id(request)
    try:
        if conversation_id is None:
            raise NotFound("conversation")
        return await _conversation_page(request, principal, conversation_id, mark_read=same_origin(request))
    except NotFound:
        return _not_found(request, principal)


def same_origin(request: web.Request) -> bool:
    """A request the browser says came from one of our own pages (following a link in the portal, or the
    page's script re-reading itself). A GET from anywhere else (another site's link, image or iframe, or
    a browser that does not say) shows the conversation but changes nothing: otherwise any site could
    mark a client's messages read and so cancel the email that would have told them (R17)."""
    return request.headers.get("Sec-Fetch-Site") == "same-origin"


@routes.post("/portal/c/{id}/read")
async def mark_read(request: web.Request) -> web.Response:
    """The conversation page's script, once the page is seen: read up to the newest message shown."""
    principal = await portal_principal(request)
    if principal is None:
        return to_sign_in(request)
    conversation_id = _conversation_id(request)
    form = await read_form(request)
    if not session_csrf_ok(principal, form.get("csrf", "")):
        return csrf_failed(request, principal)
    up_to = id_from_text(form.get("up_to", ""), big=True)
    if conversation_id is None or up_to is None:
        return _not_found(request, principal)
    person = person_of(principal)
    try:
        await messaging.conversation_detail(person, conversation_id)  # another's conversation: 404
        seen = await portal.read_on_view(request.app[CTX], person, conversation_id, up_to)
    except NotFound:
        return _not_found(request, principal)
    await publish(request, seen.events)
    return web.Response(status=204)


@routes.post("/portal/c/{id}")
async def reply(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    if principal is None:
        return to_sign_in(request)
    conversation_id = _conversation_id(request)
    if conversation_id is None:
        return _not_found(request, principal)
    form = await read_form(request)
    if not session_csrf_ok(principal, form.get("csrf", "")):
        return csrf_failed(request, principal)
    body = form.get("body", "")
    client_msg_id = form.get("client_msg_id", "")[:100] or None
    ctx = request.app[CTX]
    try:
        sent = await messaging.send_message(
            ctx, person_of(principal), conversation_id, body, client_msg_id, ip=client_ip(request)
        )
    except NotFound:
        return _not_found(request, principal)
    except DomainError as exc:  # empty, too long, not allowed (R8): say so, and keep what was typed
        return await _conversation_page(
            request,
            principal,
            conversation_id,
            status=exc.status,
            error=exc.message,
            draft=body,
            mark_read=True,  # a POST with the session's CSRF token: the person is on this page
        )
    await publish(request, sent.events)
    request.app[DISPATCHER].wake()
    message_id = sent.message.id if sent.message else 0
    return see_other(f"/portal/c/{conversation_id}#m{message_id}")
