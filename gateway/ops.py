"""Operations endpoints (no authentication): liveness and readiness."""

from __future__ import annotations

import asyncio

from aiohttp import web
from tortoise import Tortoise

from gateway.keys import HUB
from gateway.realtime import RedisHub

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def database_ready() -> bool:
    try:
        conn = Tortoise.get_connection("default")
        await asyncio.wait_for(conn.execute_query("SELECT 1"), timeout=2)
        return True
    except Exception:
        return False


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks = {"database": await database_ready()}
    hub = request.app[HUB]
    if isinstance(hub, RedisHub):
        checks["redis"] = await hub.ping()
    ok = all(checks.values())
    return web.json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )
