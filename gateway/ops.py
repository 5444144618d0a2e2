"""Operations endpoints (no authentication): liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import HUB
from gateway.realtime import RedisHub
from inbox import db

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def database_ready() -> bool:
    return await db.ready(timeout_s=2)


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness says what this process cannot serve: without the database, nothing (503, take it out of
    the balancer). Redis down is *degraded*, still 200: sends work, live events reach only the sockets
    this gateway holds, and a Redis outage must not take every gateway out of the balancer at once."""
    checks = {"database": await database_ready()}
    hub = request.app[HUB]
    if isinstance(hub, RedisHub):
        checks["redis"] = await hub.ping()
    if not checks["database"]:
        status = "unavailable"
    else:
        status = "ok" if all(checks.values()) else "degraded"
    return web.json_response(
        {"status": status, "checks": checks}, status=503 if status == "unavailable" else 200
    )
