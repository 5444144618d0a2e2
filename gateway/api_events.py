"""Appointment events from the practice's other systems (docs/api.md §3, Integration): a typed push."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import require_api_key
from gateway.keys import CTX, DISPATCHER
from gateway.validation import read_json, take
from inbox import pushes
from inbox.errors import Invalid

routes = web.RouteTableDef()


@routes.post("/api/v1/events")
async def post_event(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    data = await read_json(request, {"type", "participant_id", "appointment_id", "starts_at"})
    event_type = take(data, "type", str, required=True)
    participant_id = take(data, "participant_id", int, required=True)
    if "appointment_id" not in data:  # a number or a string: checked in inbox.pushes
        raise Invalid("missing_field", "appointment_id is required.", field="appointment_id")
    starts_at = take(data, "starts_at", str, required=True)
    job = await pushes.accept_event(
        request.app[CTX],
        principal.practice_id,
        event_type=event_type,
        participant_id=participant_id,
        appointment_id=data["appointment_id"],
        starts_at=starts_at,
    )
    request.app[DISPATCHER].wake()
    return web.json_response({"status": "accepted", "id": job.id}, status=202)
