"""Mobile devices (R19): registration, the four alert flags, and which devices a push may go to.

A device is one (practice, platform, token): the same token registered again in a practice is the same
device, moved to whoever in that practice registered it last and enabled again (a phone that changes hands,
or an app reinstalled after its token was reported dead); another practice's registration of the same token
is a device of its own (`register_device`). It belongs to the session that registered it, so signing out
(`accounts.revoke_token`) removes it; a device whose session was revoked by any other path (R4: a client's
messaging turned off) gets no pushes either.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from inbox.context import InboxContext
from inbox.errors import Invalid, NotFound
from inbox.exchange import iso
from inbox.ids import MAX_ID
from inbox.models import AuthToken, Device, Participant
from inbox.store.orm import ids_of
from push.base import ALERT_TYPES

PLATFORMS = ("apns", "fcm")
APPS = ("practice", "client")
ALERT_FLAGS = ALERT_TYPES  # appointment, new_message, appointment_request, video_appointment

# APNs tokens are hex (32 bytes today; Apple says the length may grow). FCM registration tokens are
# URL-safe text, about 150-200 characters.
_HEX = frozenset(string.hexdigits)
_FCM_CHARS = frozenset(string.ascii_letters + string.digits + "-_:.")
APNS_TOKEN_LEN = (64, 200)
FCM_TOKEN_LEN = (20, 512)


def default_alerts() -> dict[str, bool]:
    """A new device starts with all four alert types on (docs/api.md §5)."""
    return {flag: True for flag in ALERT_FLAGS}


def device_json(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "platform": device.platform,
        "app": device.app,
        "alerts": {flag: bool(device.alerts.get(flag, True)) for flag in ALERT_FLAGS},
        "enabled": device.enabled,
        "disabled_reason": device.disabled_reason,
        "created_at": iso(device.created_at),
        "last_seen_at": iso(device.last_seen_at or device.created_at),
    }


# --- checking input ----------------------------------------------------------------------------------


def check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise Invalid("invalid_platform", 'platform must be "apns" or "fcm".', field="platform")
    return platform


def check_app(app: str) -> str:
    if app not in APPS:
        raise Invalid("invalid_app", 'app must be "practice" or "client".', field="app")
    return app


def check_token(platform: str, token: str) -> str:
    token = token.strip()
    if platform == "apns":
        lo, hi = APNS_TOKEN_LEN
        if not lo <= len(token) <= hi or not set(token) <= _HEX:
            raise Invalid(
                "invalid_device_token",
                f"An APNs token is {lo} to {hi} hexadecimal characters.",
                field="token",
            )
        return token.lower()
    lo, hi = FCM_TOKEN_LEN
    if not lo <= len(token) <= hi or not set(token) <= _FCM_CHARS:
        raise Invalid(
            "invalid_device_token",
            f"An FCM token is {lo} to {hi} characters from A-Z, a-z, 0-9 and - _ : .",
            field="token",
        )
    return token


def check_alerts(alerts: Mapping[str, Any]) -> dict[str, bool]:
    """A partial or full set of the four flags, each true or false."""
    out: dict[str, bool] = {}
    for key, value in alerts.items():
        if key not in ALERT_FLAGS:
            raise Invalid(
                "invalid_alerts",
                f"alerts may only hold {', '.join(ALERT_FLAGS)}; {key!r} is not one of them.",
                field=f"alerts.{key}",
            )
        if not isinstance(value, bool):
            raise Invalid("invalid_alerts", f"alerts.{key} must be true or false.", field=f"alerts.{key}")
        out[key] = value
    return out


# --- the devices API ---------------------------------------------------------------------------------


async def register_device(
    ctx: InboxContext, actor: Participant, auth_token_id: int, *, platform: str, token: str, app: str
) -> tuple[Device, bool]:
    """Register (or re-register) a device for the caller's session; True when it is new to the caller.

    A push token belongs to one phone (one app install on it), and a registration belongs to one practice:
    - Within the caller's practice, a token registered to someone else moves to the caller — the phone
      changed hands, and the caller signed in on it (the registration is made with the caller's own
      token, so nobody registers a token for someone else). The previous owner's opt-outs do not carry over.
    - A registration in another practice is never looked at, moved or revealed: the caller gets a device
      of their own, in their practice, exactly as if the token were new. A phone used with two practices
      gets the pushes of both, and nobody in one practice can take a token away from another.
    """
    platform = check_platform(platform)
    token = check_token(platform, token)
    app = check_app(app)
    practice_id = actor.practice_id
    existing = await Device.filter(practice_id=practice_id, platform=platform, token=token).first()
    if existing is None:
        try:
            # A savepoint: inside the caller's transaction, a refused insert must not abort it (PostgreSQL).
            async with in_transaction():
                device = await Device.create(
                    practice_id=practice_id,
                    participant_id=actor.id,
                    platform=platform,
                    token=token,
                    app=app,
                    alerts=default_alerts(),
                    enabled=True,
                    auth_token_id=auth_token_id,
                    created_at=ctx.clock.now(),
                    last_seen_at=ctx.clock.now(),
                )
            return device, True
        except IntegrityError:
            # The same token registered at the same moment from another request: one device.
            existing = await Device.get(practice_id=practice_id, platform=platform, token=token)
    moved = existing.participant_id != actor.id
    if moved:
        # Someone else's opt-outs do not carry over to the new owner of the phone.
        existing.alerts = default_alerts()
    existing.participant_id = actor.id
    existing.app = app
    existing.enabled = True
    existing.disabled_reason = None
    existing.auth_token_id = auth_token_id
    existing.last_seen_at = ctx.clock.now()
    cols = ["participant_id", "app", "enabled", "disabled_reason", "auth_token_id", "alerts", "last_seen_at"]
    await existing.save(update_fields=cols)
    return existing, moved


async def get_own_device(actor: Participant, device_id: int) -> Device:
    device = None
    if 0 < device_id <= MAX_ID:
        device = await Device.filter(id=device_id, participant_id=actor.id).first()
    if device is None:
        raise NotFound("device")
    return device


async def list_devices(actor: Participant) -> list[Device]:
    return list(await Device.filter(participant_id=actor.id).order_by("id"))


async def update_alerts(actor: Participant, device_id: int, alerts: Mapping[str, Any]) -> Device:
    changes = check_alerts(alerts)
    device = await get_own_device(actor, device_id)
    device.alerts = {**default_alerts(), **device.alerts, **changes}
    await device.save(update_fields=["alerts"])
    return device


async def remove_device(actor: Participant, device_id: int) -> None:
    device = await get_own_device(actor, device_id)
    await device.delete()


# --- the dispatcher's side ---------------------------------------------------------------------------


async def push_targets(participant_ids: Iterable[int], flag: str | None) -> dict[int, list[Device]]:
    """Each participant's devices that may get a push: enabled, opted in to `flag` (None: a badge update,
    which is not an alert and goes to every enabled device), and registered by a session still in force."""
    ids = list(set(participant_ids))
    by_participant: dict[int, list[Device]] = {pid: [] for pid in ids}
    if not ids:
        return by_participant
    found = list(await Device.filter(participant_id__in=ids, enabled=True).order_by("id"))
    session_ids = {d.auth_token_id for d in found if d.auth_token_id is not None}
    revoked: set[int] = set()
    if session_ids:
        revoked = set(
            await ids_of(AuthToken.filter(id__in=list(session_ids), revoked_at__isnull=False), "id")
        )
    for device in found:
        if device.auth_token_id in revoked:
            continue
        if flag is not None and not device.alerts.get(flag, True):
            continue
        by_participant[device.participant_id].append(device)
    return by_participant


async def disable(reasons: Mapping[int, str]) -> list[int]:
    """Disable dead devices at once ({device id: why}); they get nothing more until registered again.
    Returns the ids of those that were enabled until now (two pushes of one batch may both find a token
    dead; the device is disabled, and counted, once)."""
    disabled = []
    for device_id, reason in reasons.items():
        if await Device.filter(id=device_id, enabled=True).update(
            enabled=False, disabled_reason=reason[:200]
        ):
            disabled.append(device_id)
    return disabled
