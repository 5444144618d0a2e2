"""One place where a view says "this person's access has just ended" (R25, R26, R27), after the commit.

Called once per event: a password change (`api_accounts.change_password`, `team_password`), a password
reset (`team_reset.set_password`) and a deactivation (`api_provisioning._deactivate`). The database side
is already done by then (tokens revoked, devices and links ended, the credential epoch raised; see
`inbox.access`), so no new request of that person gets through.

What is left is the open websockets (R27: closed with 4401 within two seconds, on every gateway process):
the realtime hub re-checks that participant's sockets in every process at once (gateway.realtime), and its
periodic re-check would close them within a second even if this notice were lost.
"""

from __future__ import annotations

from aiohttp import web

from gateway.keys import HUB


async def access_ended(request: web.Request, participant_id: int) -> None:
    """After the commit of a change that ended some or all of `participant_id`'s access."""
    await request.app[HUB].access_changed([participant_id])
