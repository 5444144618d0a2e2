"""Settings > People and Settings > API keys (issue 12, R25, R26, R29).

As on the settings page, these views render what is known at load time; the page's script
(gateway/static/people.js, api_keys.js) changes things through the JSON API with the session cookie and
the session's CSRF token, so the page and the API cannot disagree on a rule: every refusal shown is the
server's own message. There is no password field anywhere here: a new member is invited by email and
chooses their own password (R25).
"""

from __future__ import annotations

from aiohttp import web

from gateway.team_inbox import ROLE_NAMES
from gateway.team_web import TeamSession, chrome, render, team_session, to_sign_in
from inbox import directory

routes = web.RouteTableDef()

OWNER = "account_owner"
# Who can be a client's primary clinician: those who see clients as a clinician does (R5, R7).
CLINICAL_ROLES = frozenset({"clinician", "supervisor"})
MAX_CLIENTS = 1000


async def _refused(request: web.Request, session: TeamSession, title: str, text: str) -> web.Response:
    top = await chrome(request, session)
    return render(request, "inbox/problem.html", status=403, **top, title=title, text=text)


@routes.get("/settings/people")
async def people_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    if not session.is_manager:
        text = "Only the account owner or a practice manager can add and change people."
        return await _refused(request, session, "People", text)
    practice_id = session.member.practice_id
    team = await directory.team_members(practice_id)
    clients = await directory.clients(practice_id, limit=MAX_CLIENTS)
    contacts = await directory.contacts_by_client(practice_id, clients)
    active = [m for m in team if m.active]
    is_owner = session.is_owner
    return render(
        request,
        "inbox/people.html",
        **await chrome(request, session),
        active_team=active,
        deactivated=[m for m in team if not m.active],
        clinicians=[m for m in active if CLINICAL_ROLES & m.role_set],
        names={m.id: m.name for m in team},
        clients=clients,
        contacts=contacts,
        role_names=ROLE_NAMES,
        # A manager cannot make anyone an account owner (inbox.accounts.check_team_change).
        offered_roles=[r for r in ROLE_NAMES if is_owner or r != OWNER],
    )


@routes.get("/settings/api-keys")
async def api_keys_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    if not session.is_owner:
        return await _refused(
            request, session, "API keys", "Only the account owner can create, see and revoke API keys."
        )
    return render(request, "inbox/api_keys.html", **await chrome(request, session))
