"""What the team's pages share: templates, the session cookie, CSRF on forms, redirects.

Pages answer with ordinary responses (never raised redirects), so the security-header middleware sees every
one of them, redirects included.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from gateway.auth import SESSION_COOKIE
from gateway.cookies import read_cookie, set_cookie
from gateway.keys import CONFIG, CTX
from gateway.templating import render_page
from inbox import directory, messaging
from inbox.accounts import Principal, resolve_token
from inbox.kinds import TEAM

if TYPE_CHECKING:
    from inbox.models import Participant

MANAGER_ROLES = frozenset({"account_owner", "practice_manager"})


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """A team page, from the same templates (and base template) as the portal's."""
    return render_page(template, context, status=status)


def redirect(location: str, status: int = 303) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def safe_next(value: str | None, default: str = "/inbox") -> str:
    """Only a path on this site: never `//elsewhere` or `https://elsewhere` (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or len(value) > 500:
        return default
    if any(c in value for c in "\r\n\t") or value == "/":
        return default
    return value


def to_sign_in(request: web.Request) -> web.Response:
    return redirect("/?" + urlencode({"next": request.path_qs}))


def form_text(form: MultiDictProxy[Any], name: str, limit: int = 1000) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


# --- the session -------------------------------------------------------------------------------------


@dataclass
class TeamSession:
    principal: Principal
    member: Participant
    token: str

    @property
    def csrf(self) -> str:
        return self.principal.csrf_token or ""

    @property
    def is_manager(self) -> bool:
        return bool(MANAGER_ROLES & self.member.role_set)

    @property
    def is_owner(self) -> bool:
        return "account_owner" in self.member.role_set


async def team_session(request: web.Request) -> TeamSession | None:
    """The signed-in team member of this browser, from the session cookie only (never a bearer token)."""
    token = read_cookie(request, SESSION_COOKIE)
    if not token:
        return None
    principal = await resolve_token(request.app[CTX], token)
    if principal is None or principal.kind != "session" or principal.participant is None:
        return None
    if principal.participant.kind != TEAM:
        return None
    return TeamSession(principal, principal.participant, token)


def csrf_ok(expected: str | None, form: MultiDictProxy[Any]) -> bool:
    sent = form_text(form, "csrf", 200)
    return bool(expected) and hmac.compare_digest(sent, expected or "")


def set_session_cookie(request: web.Request, resp: web.StreamResponse, token: str) -> None:
    set_cookie(request, resp, SESSION_COOKIE, token, request.app[CONFIG].session_ttl_s)


async def chrome(request: web.Request, session: TeamSession) -> dict[str, Any]:
    """What every signed-in page's top bar needs."""
    member = session.member
    practice = await directory.get_practice(member.practice_id)
    return {
        "me": member,
        "csrf": session.csrf,
        "practice_name": practice.name,
        "is_manager": session.is_manager,
        "is_owner": session.is_owner,
        "unread_total": await messaging.unread_total(member.id),
        "away": messaging.away_json(member),
        # The practice has no time zone yet: an owner's or manager's browser sends its own (live.js).
        "set_time_zone": session.is_manager and practice.time_zone is None,
    }
