"""Client records for the team (R21, R22): transcripts with a choice of participants, check boxes and
"Copy to chart note". The page lists who may be chosen; its script reads the transcript and makes chart
notes through the records API, which checks access again and writes the audit rows (R24)."""

from __future__ import annotations

from aiohttp import web

from gateway.team_web import chrome, render, team_session, to_sign_in
from inbox import records
from inbox.errors import Forbidden, NotFound

routes = web.RouteTableDef()


@routes.get("/records")
async def records_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    top = await chrome(request, session)
    raw = request.query.get("client", "")
    choices = await records.clients_with_record_access(session.member)
    if not raw:
        return render(request, "inbox/records.html", **top, choices=choices, client=None, people=[])
    try:
        if not (raw.isdigit() and len(raw) <= 18):
            raise NotFound("client")
        client, people = await records.record_participants(session.member, int(raw))
    except NotFound:
        return render(
            request, "inbox/problem.html", status=404, **top, title="Client records", text="No such client."
        )
    except Forbidden:
        text = (
            "Only team members with access to this client's profile can read the client's records. "
            "The account owner or a practice manager can grant access in Settings."
        )
        return render(request, "inbox/problem.html", status=403, **top, title="Client records", text=text)
    zone = await records.practice_zone(session.member.practice_id)
    return render(
        request, "inbox/records.html", **top, choices=choices, client=client, people=people, time_zone=zone
    )
