"""Devices (docs/api.md §3): register a phone or a browser for pushes, choose its four alert types,
unregister it; and the VAPID public key a browser subscribes with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auditing import audit_request
from gateway.auth import require_participant, require_principal
from gateway.keys import CONFIG, CTX, SERVICES
from gateway.notify_push import WEBPUSH_KEY
from gateway.validation import path_int, read_json, take
from inbox import db, devices, pushes

if TYPE_CHECKING:
    from inbox.models import Participant

routes = web.RouteTableDef()


@routes.get("/api/v1/devices")
async def list_devices(request: web.Request) -> web.Response:
    p = await require_participant(request)
    return web.json_response({"items": [devices.device_json(d) for d in await devices.list_devices(p)]})


@routes.post("/api/v1/devices")
async def register_device(request: web.Request) -> web.Response:
    p = await require_participant(request)
    principal = await require_principal(request)
    data = await read_json(request, {"platform", "token", "app", "subscription"})
    platform = take(data, "platform", str, required=True)
    token = take(data, "token", str)
    subscription = take(data, "subscription", dict)
    app = take(data, "app", str, required=True)
    async with db.transaction():  # the registration and its audit row commit together, or neither does
        device, _ = await devices.register_device(
            request.app[CTX],
            p,
            principal.token_id,
            platform=platform,
            token=token,
            app=app,
            subscription=subscription,
            allow_private=request.app[CONFIG].webpush_allow_private,
        )
        await audit_request(
            request,
            p,
            "device.register",
            "device",
            device.id,
            {"platform": device.platform, "app": device.app},
        )
    # Always 201 as docs/api.md says, also for a token registered again (apps do that on every start): it
    # is the same device, with the same id.
    return web.json_response(devices.device_json(device), status=201)


@routes.get("/api/v1/webpush/vapid-public-key")
async def vapid_public_key(request: web.Request) -> web.Response:
    await require_participant(request)
    return web.json_response({"public_key": request.app[SERVICES][WEBPUSH_KEY]})


@routes.patch("/api/v1/devices/{id}")
async def update_device(request: web.Request) -> web.Response:
    p = await require_participant(request)
    data = await read_json(request, {"alerts"})
    alerts = take(data, "alerts", dict, required=True)
    device = await devices.update_alerts(p, path_int(request, "id"), alerts)
    return web.json_response(devices.device_json(device))


@routes.delete("/api/v1/devices/{id}")
async def remove_device(request: web.Request) -> web.Response:
    p = await require_participant(request)
    await devices.remove_device(p, path_int(request, "id"))
    return web.json_response({"ok": True})


async def badge_to_other_devices(request: web.Request, reader: Participant) -> None:
    """After a read: the reader's other devices get a silent badge update (not the session that read)."""
    principal = await require_principal(request)
    await pushes.enqueue_badge_update(request.app[CTX], reader, principal.token_id)
