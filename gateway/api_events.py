"""Appointment events from the practice's other systems (docs/api.md §3, Integration): a typed push."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import require_api_key
from gateway.keys import CTX, DISPATCHER
from gateway.routing import API_KEY, operation
from gateway.shapes import integration as shapes
from gateway.typed import answer, read_body
from inbox import pushes

routes = web.RouteTableDef()


@routes.post("/api/v1/events")
@operation(
    "post_event",
    "An appointment event: a push to that participant's devices that opted in.",
    tag="integration",
    security=API_KEY,
    body=shapes.AppointmentEvent,
    ok={202: ("Accepted.", shapes.Accepted)},
    errors=[403, 404],
)
async def post_event(request: web.Request) -> web.Response:
    principal = await require_api_key(request)
    body = await read_body(request, shapes.AppointmentEvent)
    job = await pushes.accept_event(
        request.app[CTX],
        principal.practice_id,
        event_type=body.type,
        participant_id=body.participant_id,
        appointment_id=body.appointment_id,  # a number or a string: checked in inbox.pushes
        starts_at=body.starts_at,
    )
    request.app[DISPATCHER].wake()
    return answer(shapes.Accepted.model_construct(status="accepted", id=job.id), status=202)
