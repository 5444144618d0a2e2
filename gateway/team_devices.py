"""Your account > Notifications (R19): each team member's own phones and browsers, with the four alert types
as switches and Remove, and the "Browser notifications" switch for this browser (Web Push). The page's
scripts (gateway/static/inbox_devices.js, webpush.js) use GET/POST/PATCH/DELETE /api/v1/devices.

The service worker is served at /inbox/sw.js with `Service-Worker-Allowed: /inbox`, so it may take the
scope /inbox: the inbox page and its conversations, where a clicked notification leads."""

from __future__ import annotations

import functools

from aiohttp import web

from gateway.team_web import chrome, render, team_session, to_sign_in
from gateway.templating import STATIC_DIR

routes = web.RouteTableDef()


@functools.cache
def _service_worker() -> bytes:
    return (STATIC_DIR / "inbox_sw.js").read_bytes()


@routes.get("/account/notifications")
async def notifications_page(request: web.Request) -> web.Response:
    session = await team_session(request)
    if session is None:
        return to_sign_in(request)
    return render(request, "inbox/notifications.html", **await chrome(request, session))


@routes.get("/inbox/sw.js")
async def service_worker(request: web.Request) -> web.Response:
    """Public like every static file (it holds no data); never cached (security_headers: no-store), so a
    new version reaches browsers at their next check."""
    return web.Response(
        body=_service_worker(),
        content_type="text/javascript",
        charset="utf-8",
        headers={"Service-Worker-Allowed": "/inbox"},
    )
