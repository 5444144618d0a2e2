"""Portal sessions and CSRF, shared by the portal's pages (`gateway.portal`) and its sign-in
(`gateway.portal_signin`).

A portal session is a "session" AuthToken with a CSRF token, in the HttpOnly, SameSite=Lax cookie
PORTAL_COOKIE, Secure when the public URL is https. Every form carries a CSRF token: the session's on
signed-in pages, and, on the sign-in forms that come before any session, a random one paired with an
HttpOnly cookie (double submit), so another site cannot sign a browser in or ask for links in its name.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from gateway.auth import PORTAL_COOKIE
from gateway.cookies import read_cookie, set_cookie
from gateway.keys import CONFIG, CTX, HUB
from gateway.templating import render_page
from gateway.validation import raise_nul
from inbox import accounts, links
from inbox.accounts import Principal
from inbox.models import TEAM, Participant
from portal_links import new_token

FORM_COOKIE = "securemsg_form"


async def portal_principal(request: web.Request) -> Principal | None:
    """The signed-in client or contact, from the portal cookie; None if there is none that works (also for a
    person whose messaging or portal access was turned off: R4)."""
    token = read_cookie(request, PORTAL_COOKIE)
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


def person_of(principal: Principal) -> Participant:
    assert principal.participant is not None
    return principal.participant


async def start_session(request: web.Request, resp: web.StreamResponse, resolved: links.Resolved) -> None:
    ttl_s = links.session_ttl_for(request.app[CTX], resolved.link)
    await start_session_for(request, resp, resolved.participant, ttl_s)


async def start_session_for(
    request: web.Request, resp: web.StreamResponse, person: Participant, ttl_s: int
) -> None:
    """A portal session for `person` in this browser: from a link (above) or from "Sign in with Google"
    (gateway.portal_oidc), the same way."""
    ctx = request.app[CTX]
    previous = await portal_principal(request)
    if previous is not None:  # a session of whoever used this browser before: it ends here
        await accounts.revoke_token(ctx, previous)
        await request.app[HUB].access_changed([person_of(previous).id])  # R27
    token, row = await accounts.issue_token(ctx, person, "session", ttl_s, csrf=True)
    assert row.expires_at is not None
    max_age = max(1, int((row.expires_at - ctx.clock.now()).total_seconds()))
    set_cookie(request, resp, PORTAL_COOKIE, token, max_age)


def session_csrf_ok(principal: Principal, sent: str) -> bool:
    expected = principal.csrf_token or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def _form_token(request: web.Request) -> str:
    token = read_cookie(request, FORM_COOKIE) or ""
    return token if 20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum() else ""


def _with_form_token(request: web.Request) -> tuple[str, bool]:
    """The pre-session CSRF token for this browser, and whether it is new (to be set as a cookie)."""
    token = _form_token(request)
    return (token, False) if token else (new_token(24), True)


def form_csrf_ok(request: web.Request, sent: str) -> bool:
    cookie = _form_token(request)
    return bool(cookie) and hmac.compare_digest(sent.encode(), cookie.encode())


async def read_form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    form = {k: v for k, v in data.items() if isinstance(v, str)}
    for key, value in form.items():
        if "\x00" in key or "\x00" in value:
            raise_nul(key)
    return form


# --- shared page pieces --------------------------------------------------------------------------------


def portal_page(
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
        # The live-events script connects only for a signed-in person (templates/pages/portal/_base.html).
        "me_id": principal.participant.id if principal is not None and principal.participant else None,
        "csrf": principal.csrf_token if principal is not None else "",
        "form_csrf": "",
        # "Sign in with Google" beside Instant Sign In, only when it is configured (gateway.portal_oidc).
        "oidc_name": config.oidc_name if (config := request.app[CONFIG]).oidc_enabled else "",
    }
    new_cookie = False
    if principal is None:
        base["form_csrf"], new_cookie = _with_form_token(request)
    resp = render_page(name, base | context, status=status, headers=headers)
    if new_cookie:
        set_cookie(request, resp, FORM_COOKIE, base["form_csrf"], 3600)
    return resp


def csrf_failed(request: web.Request, principal: Principal | None = None) -> web.Response:
    return portal_page(request, "portal/form_expired.html", status=403, principal=principal)
