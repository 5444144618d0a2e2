"""Integration (docs/api.md §3, R29): API keys, appointment events, webhooks and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import WithJsonSchema

from gateway.typed import Answer, Body, Id, Time, items, limit, one_of
from inbox.apikeys import MAX_NAME, SCOPES
from inbox.pushes import APPOINTMENT_TYPES
from inbox.webhooks import EVENTS, MAX_URL

# Checked by the domain with its own codes: 422 invalid_scopes, invalid_name, invalid_event_type,
# invalid_appointment_id, invalid_starts_at, invalid_events, invalid_url, webhook_url_not_public.
Scope = Annotated[str, one_of(SCOPES)]
Event = Annotated[str, one_of(EVENTS)]


class NewApiKey(Body):
    name: Annotated[str, limit(minLength=1, maxLength=MAX_NAME)]
    scopes: Annotated[list[Scope], items(len(SCOPES)), limit(minItems=1)]


class AppointmentEvent(Body):
    type: Annotated[str, one_of(APPOINTMENT_TYPES)]
    participant_id: Id
    # A number or a short identifier from the practice's system; the domain checks which.
    appointment_id: Annotated[
        Any,
        WithJsonSchema(
            {
                "oneOf": [
                    {"type": "integer", "minimum": 1},
                    {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$"},
                ]
            }
        ),
    ]
    starts_at: Time


class NewWebhook(Body):
    url: Annotated[str, limit(format="uri", maxLength=MAX_URL)]
    events: Annotated[list[Event], items(len(EVENTS)), limit(minItems=1)]


class ApiKey(Answer):
    id: int
    name: str
    scopes: list[Scope]
    created_at: Time
    last_used_at: Time | None
    revoked_at: Time | None


class NewKey(ApiKey):
    key: str  # shown once, here


class ApiKeys(Answer):
    items: list[ApiKey]


class Accepted(Answer):
    status: Literal["accepted"]
    id: int


class Webhook(Answer):
    id: int
    url: str
    events: list[Event]
    active: bool
    created_at: Time


class NewHook(Webhook):
    secret: str  # shown once, here


class Webhooks(Answer):
    items: list[Webhook]


class WebhookDelivery(Answer):
    id: str
    event: Event
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: Time
    delivered_at: Time | None
    payload: dict[str, Any]


class Deliveries(Answer):
    items: list[WebhookDelivery]
    next_before: int | None
