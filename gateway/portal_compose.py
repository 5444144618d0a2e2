"""The portal's "New message" (R8, R10, R11): the people a client or contact may start a conversation with,
and starting it; and its "Notifications" page (R19).

The list is the server's own recipient logic (`inbox.messaging.recipients`, the same as GET
/api/v1/recipients), so it names exactly whom R8 allows: the client's primary clinician, practice managers,
billers, schedulers (and a supervisor with access), never another clinician. Choosing one opens the
exchange with that person, or the one that already exists (R11), and goes to its thread; the first message
is written there, in the ordinary reply box. No script is needed: each person is a button in a form.
"""

from __future__ import annotations

from aiohttp import web

from gateway.api_messaging import publish
from gateway.keys import CTX
from gateway.portal_session import (
    csrf_failed,
    person_of,
    portal_page,
    portal_principal,
    read_form,
    session_csrf_ok,
    to_sign_in,
)
from gateway.templating import see_other
from inbox import devices, messaging, portal
from inbox.accounts import Principal
from inbox.errors import DomainError
from inbox.ids import id_from_text

routes = web.RouteTableDef()

# A practice's managers, billers and schedulers and one primary clinician: a short list, shown whole.
MAX_LISTED = 100


async def _page(
    request: web.Request, principal: Principal, *, status: int = 200, error: str = ""
) -> web.Response:
    person = person_of(principal)
    people = await messaging.recipients(person, None, MAX_LISTED)
    primary = await portal.primary_clinician_id(person)
    return portal_page(
        request,
        "portal/new.html",
        status=status,
        principal=principal,
        practice_name=await portal.practice_name(person),
        people=[
            {"id": p["id"], "name": p["name"], "away": p["away"], "role": _role(p["id"], p["roles"], primary)}
            for p in people
        ],
        notice=await portal.new_message_notice(person),
        error=error,
    )


@routes.get("/portal/new")
async def new_message(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    if principal is None:
        return to_sign_in(request)
    return await _page(request, principal)


@routes.post("/portal/new")
async def start(request: web.Request) -> web.Response:
    principal = await portal_principal(request)
    if principal is None:
        return to_sign_in(request)
    form = await read_form(request)
    if not session_csrf_ok(principal, form.get("csrf", "")):
        return csrf_failed(request, principal)
    other = id_from_text(form.get("to", ""))
    if other is None:
        return await _page(request, principal, status=422, error="Choose whom to write to.")
    try:
        opened = await messaging.open_conversation(request.app[CTX], person_of(principal), [other])
    except DomainError as exc:  # someone R8 does not allow, or no longer there: say so, on the same list
        return await _page(request, principal, status=exc.status, error=_refusal_text(exc))
    await publish(request, opened.events)
    assert opened.conversation is not None
    return see_other(f"/portal/c/{opened.conversation.id}")


# What each person does, in the client's words (the most client-facing role first).
ROLE_TEXT = (
    ("clinician", "Clinician"),
    ("scheduler", "Scheduling"),
    ("biller", "Billing"),
    ("practice_manager", "Practice manager"),
    ("account_owner", "Practice manager"),
    ("supervisor", "Supervisor"),
)


def _role(person_id: int, roles: list[str], primary: int | None) -> str:
    if person_id == primary:
        return "Your clinician"
    return next((text for role, text in ROLE_TEXT if role in roles), "")


def _refusal_text(exc: DomainError) -> str:
    if exc.status == 404:
        return "That person is not someone you can write to here."
    return exc.message


@routes.get("/portal/notifications")
async def notifications(request: web.Request) -> web.Response:
    """The person's phones and their four alert types (R19). The page lists them; its script changes them
    through the API (PATCH and DELETE /api/v1/devices/{id}), which the portal session may call."""
    principal = await portal_principal(request)
    if principal is None:
        return to_sign_in(request)
    person = person_of(principal)
    return portal_page(
        request,
        "portal/notifications.html",
        principal=principal,
        practice_name=await portal.practice_name(person),
        devices=[devices.device_json(d) for d in await devices.list_devices(person)],
        alert_names=ALERT_NAMES,
    )


# R19's four alert types, in the words of the settings page.
ALERT_NAMES = (
    ("new_message", "New messages"),
    ("appointment", "Appointment alerts"),
    ("appointment_request", "Appointment requests"),
    ("video_appointment", "Video appointments"),
)
