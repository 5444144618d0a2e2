"""Operations endpoints (no authentication): liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import HUB
from gateway.realtime import RedisHub
from gateway.routing import NONE, operation
from gateway.shapes import ops as shapes
from gateway.typed import answer
from inbox import db

routes = web.RouteTableDef()


@routes.get("/healthz")
@operation(
    "healthz",
    "Liveness: 200 while the process runs.",
    tag="operations",
    security=NONE,
    ok={200: ("Alive.", shapes.Alive)},
)
async def healthz(request: web.Request) -> web.Response:
    return answer(shapes.Alive.model_construct(status="ok"))


async def database_ready() -> bool:
    return await db.ready(timeout_s=2)


@routes.get("/readyz")
@operation(
    "readyz",
    "Readiness.",
    tag="operations",
    security=NONE,
    ok={
        200: (
            "The database answers. `degraded`: Redis (when configured) does not; sends still work, live "
            "events reach only this gateway's sockets.",
            shapes.Ready,
        ),
        503: ("The database is not answering.", shapes.Ready),
    },
    errors=[],
)
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
    return answer({"status": status, "checks": checks}, status=503 if status == "unavailable" else 200)
