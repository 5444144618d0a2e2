"""Devices (docs/api.md §3): a phone registered for pushes and its four alert types (R19)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import WithJsonSchema

from gateway.typed import Answer, Body, Time, limit, one_of
from inbox.devices import ALERT_FLAGS, APPS, FCM_TOKEN_LEN, PLATFORMS

_FLAGS = {"type": "object", "properties": {flag: {"type": "boolean"} for flag in ALERT_FLAGS}}

# Checked by the domain with its own codes: 422 invalid_platform, invalid_app, invalid_device_token,
# invalid_alerts (whose `field` names the flag: `alerts.video`).
Platform = Annotated[str, one_of(PLATFORMS)]
App = Annotated[str, one_of(APPS)]


class NewDevice(Body):
    platform: Platform
    token: Annotated[str, limit(minLength=FCM_TOKEN_LEN[0], maxLength=FCM_TOKEN_LEN[1])]
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


class Devices(Answer):
    items: list[Device]
