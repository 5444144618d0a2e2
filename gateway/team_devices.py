"""Your account > Notifications (R19): each team member's own phones, with the four alert types as switches
and Remove. The page's script (gateway/static/inbox_devices.js) uses GET/PATCH/DELETE /api/v1/devices."""

from __future__ import annotations

from aiohttp import web

from gateway.team_web import chrome, render, team_session, to_sign_in

routes = web.RouteTableDef()


@routes.get("/account/notifications")
async def notifications_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    return render(request, "inbox/notifications.html", **await chrome(request, session))
