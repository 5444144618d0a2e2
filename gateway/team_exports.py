"""Settings > Data export (R23): the owner, or a practice manager the owner allowed to export; and
Settings > Audit log (R24), the owner only.

The page renders the form and who can be chosen; its script (gateway/static/inbox_export.js) asks for an
export through POST /api/v1/exports, polls it until it is ready, shows the password with Copy, and lists
past exports with their downloads.
"""

from __future__ import annotations

from aiohttp import web

from gateway.team_web import chrome, render, team_session, to_sign_in
from inbox import audit_view, directory, exports
from inbox.kinds import TEAM

routes = web.RouteTableDef()


@routes.get("/settings/data-export")
async def data_export_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    top = await chrome(request, session)
    if not exports.may_export(session.member):
        return render(
            request,
            "inbox/problem.html",
            status=403,
            **top,
            title="Data export",
            text="Only the account owner, or a practice manager the owner allows, can export client data.",
        )
    team = await directory.team_members(session.member.practice_id)
    return render(
        request,
        "inbox/data_export.html",
        **top,
        # Scope "clinician" takes a clinician (inbox.exports.request_export): their clients.
        clinicians=[m for m in team if "clinician" in m.role_set],
    )


@routes.get("/settings/audit")
async def audit_page(request: web.Request) -> web.Response:
    """Settings > Audit log (R24), the account owner only: its script reads GET /api/v1/audit."""
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    top = await chrome(request, session)
    if not session.is_owner:
        return render(
            request,
            "inbox/problem.html",
            status=403,
            **top,
            title="Audit log",
            text="Only the account owner can read the audit log.",
        )
    practice_id = session.member.practice_id
    people = await directory.everyone(practice_id, limit=2000)
    return render(
        request,
        "inbox/audit.html",
        **top,
        people=[p for p in people if p.kind == TEAM],
        names={p.id: p.name for p in people},
        actions=await audit_view.actions(practice_id),
    )
