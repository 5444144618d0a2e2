"""The web inbox and the settings page for the team (docs/api.md §6).

These views render the page shell and what is known at load time; the page's JavaScript
(gateway/static/inbox.js, settings.js) then talks to the JSON API with the session cookie and the
session's CSRF token, and listens to the websocket for live changes.
"""

from __future__ import annotations

from aiohttp import web

from gateway.keys import CTX
from gateway.team_web import chrome, render, team_session, to_sign_in
from inbox import accounts, directory, messaging, timezones

routes = web.RouteTableDef()


@routes.get("/inbox")
async def inbox_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    raw = request.query.get("conversation", "")
    # The link in an unread-reminder email; the script opens it (a stranger's id simply is not found).
    conversation_id = int(raw) if raw.isdigit() and len(raw) <= 18 else None
    return render(
        request,
        "inbox/inbox.html",
        **await chrome(request, session),
        conversation_id=conversation_id,
        max_body=messaging.MAX_BODY,
        max_away=messaging.MAX_AWAY,
        default_away=messaging.DEFAULT_AWAY_TEXT,
    )


@routes.get("/settings")
async def settings_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    top = await chrome(request, session)
    if not session.is_manager:
        return render(
            request,
            "inbox/problem.html",
            status=403,
            **top,
            title="Settings",
            text="Only the account owner or a practice manager can change the practice's settings.",
        )
    practice_id = session.member.practice_id
    practice = await directory.get_practice(practice_id)
    team = await directory.team_members(practice_id, include_inactive=False)
    clients = await directory.clients(practice_id, limit=1000)
    names = {m.id: m.name for m in team}
    return render(
        request,
        "inbox/settings.html",
        **top,
        settings=accounts.settings_json(practice, request.app[CTX]),
        team=team,
        clients=clients,
        clinician_names=names,
        role_names=ROLE_NAMES,
        time_zones=timezones.known_zones(),
    )


ROLE_NAMES = {
    "account_owner": "Account owner",
    "practice_manager": "Practice manager",
    "clinician": "Clinician",
    "supervisor": "Supervisor",
    "biller": "Biller",
    "scheduler": "Scheduler",
}
