"""Devices (docs/api.md §3): register a phone or a browser for pushes, choose its four alert types,
unregister it; and the VAPID public key a browser subscribes with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auditing import audit_request
from gateway.auth import require_participant, require_principal
from gateway.keys import CONFIG, CTX, SERVICES
from gateway.notify_push import WEBPUSH_KEY
from gateway.routing import PERSON, operation, path_id
from gateway.shapes import devices as shapes
from gateway.shapes.common import Ok
from gateway.typed import answer, read_body
from gateway.validation import path_int
from inbox import db, devices, pushes

if TYPE_CHECKING:
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
    "Register a phone or a browser for pushes (R19): a phone with its `token`, a browser (platform "
    "`webpush`) with its Push API `subscription` (`PushSubscription.toJSON()`: an https endpoint, "
    "keys.p256dh of 65 bytes and keys.auth of 16, base64url). The same token or endpoint again is "
    "the same device.",
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
    platform, token, subscription, app = body.platform, body.token, body.subscription, body.app
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
    return answer(devices.device_json(device), status=201)


@routes.get("/api/v1/webpush/vapid-public-key")
@operation(
    "get_vapid_public_key",
    "The server's VAPID public key (RFC 8292), for the browser's pushManager.subscribe "
    "`applicationServerKey`: the uncompressed P-256 point, base64url.",
    tag="devices",
    security=PERSON,
    ok={200: ("The key.", shapes.VapidPublicKey)},
    errors=[403],
)
async def vapid_public_key(request: web.Request) -> web.Response:
    await require_participant(request)
    return answer({"public_key": request.app[SERVICES][WEBPUSH_KEY]})


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
