"""Devices (docs/api.md §3): a phone registered for pushes and its four alert types (R19)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import WithJsonSchema

from gateway.typed import Answer, Body, Time, limit, one_of
from inbox.devices import ALERT_FLAGS, APPS, FCM_TOKEN_LEN, MAX_ENDPOINT, PLATFORMS

_FLAGS = {"type": "object", "properties": {flag: {"type": "boolean"} for flag in ALERT_FLAGS}}

# Checked by the domain with its own codes: 422 invalid_platform, invalid_app, invalid_device_token,
# invalid_alerts (whose `field` names the flag: `alerts.video`).
Platform = Annotated[str, one_of(PLATFORMS)]
App = Annotated[str, one_of(APPS)]


# A browser's Push API subscription (`PushSubscription.toJSON()`), checked by the domain with its own codes
# (422 invalid_subscription, webpush_endpoint_not_public, naming the field: `subscription.keys.p256dh`).
_SUBSCRIPTION = {
    "type": "object",
    "properties": {
        "endpoint": {"type": "string", "maxLength": MAX_ENDPOINT},
        "expirationTime": {"type": ["number", "null"]},
        "keys": {
            "type": "object",
            "properties": {"p256dh": {"type": "string"}, "auth": {"type": "string"}},
            "required": ["p256dh", "auth"],
        },
    },
    "required": ["endpoint", "keys"],
}


class NewDevice(Body):
    """A phone with its `token`, or a browser (platform `webpush`) with its `subscription`."""

    platform: Platform
    token: Annotated[str, limit(minLength=FCM_TOKEN_LEN[0], maxLength=FCM_TOKEN_LEN[1])] | None = None
    subscription: Annotated[dict[str, Any], WithJsonSchema(_SUBSCRIPTION)] | None = None
    app: App


class AlertsChange(Body):
    alerts: Annotated[dict[str, Any], WithJsonSchema({**_FLAGS, "additionalProperties": False})]


class Device(Answer):
    id: int
    platform: Platform
    app: App
    alerts: Annotated[
        dict[str, bool],
        WithJsonSchema({**_FLAGS, "required": list(ALERT_FLAGS), "additionalProperties": False}),
    ]
    enabled: bool
    disabled_reason: str | None
    created_at: Time
    last_seen_at: Time
    # A browser's page finds its own device by it (the SHA-256 of its subscription's endpoint); else null.
    subscription_id: str | None


class VapidPublicKey(Answer):
    public_key: str


class Devices(Answer):
    items: list[Device]
