"""Portal sessions and CSRF, shared by the portal's pages (`gateway.portal`) and its sign-in
(`gateway.portal_signin`).

A portal session is a "session" AuthToken with a CSRF token, in the HttpOnly, SameSite=Lax cookie
PORTAL_COOKIE, Secure when the public URL is https. Every form carries a CSRF token: the session's on
signed-in pages, and, on the sign-in forms that come before any session, a random one paired with an
HttpOnly cookie (double submit), so another site cannot sign a browser in or ask for links in its name.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.auth import PORTAL_COOKIE
from gateway.cookies import del_cookie, read_cookie, set_cookie
from gateway.keys import CONFIG, CTX, HUB
from gateway.templating import render_page, see_other
from gateway.validation import raise_nul
from inbox import accounts, db, links
from inbox.accounts import Principal
from inbox.kinds import TEAM
from portal_links import new_token

if TYPE_CHECKING:
    from inbox.models import Participant

FORM_COOKIE = "securemsg_form"
# When this browser's portal session ends, and how it began ("link.<unix time>" or "session.<unix time>"):
# not a secret and not a credential, only so that the sign-in page can say why someone is there ("Your link
# has expired") after the session cookie itself is gone. It outlives the session by a month.
ENDS_COOKIE = "securemsg_portal_ends"
ENDS_KEEP_S = 30 * 86400
# Where to go after Instant Sign In (the page someone was sent away from), between asking for the link and
# pressing its button, in the same browser.
NEXT_COOKIE = "securemsg_next"
NEXT_KEEP_S = 3600
# Only the portal's own pages: never another site, nor a path that could be read as one ("//host", "/\host").
_SAFE_NEXT = re.compile(r"/portal(?:/c/[1-9][0-9]{0,18}|/new|/notifications)?")


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


async def start_session(
    request: web.Request,
    resp: web.StreamResponse,
    resolved: links.Resolved,
    *,
    audited: Callable[[], Awaitable[object]],
    claim: Callable[[], Awaitable[bool]] | None = None,
) -> bool:
    ttl_s = links.session_ttl_for(request.app[CTX], resolved.link)
    how = "link" if resolved.link.purpose == links.NOTIFY else "session"
    return await start_session_for(
        request, resp, resolved.participant, ttl_s, how=how, audited=audited, claim=claim
    )


async def start_session_for(
    request: web.Request,
    resp: web.StreamResponse,
    person: Participant,
    ttl_s: int,
    *,
    how: str = "session",
    audited: Callable[[], Awaitable[object]],
    claim: Callable[[], Awaitable[bool]] | None = None,
) -> bool:
    """A portal session for `person` in this browser: from a link (above) or from "Sign in with Google"
    (gateway.portal_oidc), the same way.

    `claim` (using up an Instant Sign In link), the session and `audited` (the sign-in's audit row) commit
    together or not at all (R24): a refused row leaves no session and the link unused. False, with nothing
    done, when the claim is refused (the link was used meanwhile)."""
    ctx = request.app[CTX]
    previous = await portal_principal(request)
    async with db.transaction():
        if claim is not None and not await claim():
            return False
        if previous is not None:  # a session of whoever used this browser before: it ends here
            await accounts.revoke_token(ctx, previous)
        token, row = await accounts.issue_token(ctx, person, "session", ttl_s, csrf=True)
        await audited()
    if previous is not None:  # R27, once the sign-out of the previous session has committed
        await request.app[HUB].access_changed([person_of(previous).id])
    assert row.expires_at is not None
    max_age = max(1, int((row.expires_at - ctx.clock.now()).total_seconds()))
    set_cookie(request, resp, PORTAL_COOKIE, token, max_age)
    set_cookie(request, resp, ENDS_COOKIE, f"{how}.{int(row.expires_at.timestamp())}", max_age + ENDS_KEEP_S)
    return True


def end_session_cookies(request: web.Request, resp: web.StreamResponse) -> None:
    """Signing out: the session cookie, and the note of when it would have ended (nothing expired)."""
    del_cookie(request, resp, PORTAL_COOKIE)
    del_cookie(request, resp, ENDS_COOKIE)


def session_ended(request: web.Request) -> str:
    """Whether this browser's portal session ran out by time (not signed out): "link" or "session", or ""."""
    how, _, until = (read_cookie(request, ENDS_COOKIE) or "").partition(".")
    if how not in ("link", "session") or not until.isdigit() or len(until) > 12:
        return ""
    return how if int(until) <= request.app[CTX].clock.now().timestamp() else ""


def safe_next(path: str | None) -> str | None:
    """`path` if it is one of the portal's own pages to return to after signing in, else None."""
    return path if path and _SAFE_NEXT.fullmatch(path) else None


def to_sign_in(request: web.Request) -> web.Response:
    """No working session for a portal page: to the sign-in page, which says why (an expired link or
    session) and comes back here after Instant Sign In."""
    here = safe_next(request.path) if request.method == "GET" else None
    query = "?" + urlencode({"next": here}) if here and here != "/portal" else ""
    return see_other("/portal/sign-in" + query)


def remember_next(request: web.Request, resp: web.StreamResponse, path: str | None) -> None:
    target = safe_next(path)
    if target:
        set_cookie(request, resp, NEXT_COOKIE, target, NEXT_KEEP_S)


def take_next(request: web.Request, resp: web.StreamResponse) -> str:
    """Where Instant Sign In goes: the remembered page (once), else the conversations."""
    target = safe_next(read_cookie(request, NEXT_COOKIE))
    if read_cookie(request, NEXT_COOKIE) is not None:
        del_cookie(request, resp, NEXT_COOKIE)
    return target or "/portal"


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
