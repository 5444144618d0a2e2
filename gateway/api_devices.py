"""Devices (docs/api.md §3): register a phone for pushes, choose its four alert types, unregister it."""

from __future__ import annotations

from aiohttp import web
from tortoise.transactions import in_transaction

from gateway.auditing import audit_request
from gateway.auth import require_participant, require_principal
from gateway.keys import CTX
from gateway.routing import PERSON, operation, path_id
from gateway.shapes import devices as shapes
from gateway.shapes.common import Ok
from gateway.typed import answer, read_body
from gateway.validation import path_int
from inbox import devices, pushes
from inbox.models import Participant

routes = web.RouteTableDef()

DEVICE = [path_id(what="device")]


@routes.get("/api/v1/devices")
@operation(
    "list_devices",
    "The caller's devices.",
    tag="devices",
    security=PERSON,
    ok={200: ("Devices.", shapes.Devices)},
    errors=[403],
)
async def list_devices(request: web.Request) -> web.Response:
    p = await require_participant(request)
    return answer({"items": [devices.device_json(d) for d in await devices.list_devices(p)]})


@routes.post("/api/v1/devices")
@operation(
    "register_device",
    "Register a phone for pushes (R19); the same token again is the same device.",
    tag="devices",
    security=PERSON,
    body=shapes.NewDevice,
    ok={201: ("Registered.", shapes.Device)},
    errors=[403],
)
async def register_device(request: web.Request) -> web.Response:
    p = await require_participant(request)
    principal = await require_principal(request)
    body = await read_body(request, shapes.NewDevice)
    platform, token, app = body.platform, body.token, body.app
    async with in_transaction():  # the registration and its audit row commit together, or neither does
        device, _ = await devices.register_device(
            request.app[CTX], p, principal.token_id, platform=platform, token=token, app=app
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
    return answer(devices.device_json(device), status=201)


@routes.patch("/api/v1/devices/{id}")
@operation(
    "update_device",
    "Turn the device's four alert types on or off.",
    tag="devices",
    security=PERSON,
    params=DEVICE,
    body=shapes.AlertsChange,
    ok={200: ("The device.", shapes.Device)},
    errors=[403, 404],
)
async def update_device(request: web.Request) -> web.Response:
    p = await require_participant(request)
    alerts = (await read_body(request, shapes.AlertsChange)).alerts
    device = await devices.update_alerts(p, path_int(request, "id"), alerts)
    return answer(devices.device_json(device))


@routes.delete("/api/v1/devices/{id}")
@operation(
    "remove_device",
    "Unregister a device.",
    tag="devices",
    security=PERSON,
    params=DEVICE,
    ok={200: ("Removed.", Ok)},
    errors=[403, 404],
)
async def remove_device(request: web.Request) -> web.Response:
    p = await require_participant(request)
    await devices.remove_device(p, path_int(request, "id"))
    return answer(Ok.model_construct(ok=True))


async def badge_to_other_devices(request: web.Request, reader: Participant) -> None:
    """After a read: the reader's other devices get a silent badge update (not the session that read)."""
    principal = await require_principal(request)
    await pushes.enqueue_badge_update(request.app[CTX], reader, principal.token_id)
