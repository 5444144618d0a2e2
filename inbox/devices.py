"""Devices (R19): phones and browsers; registration, the four alert flags, and which devices a push goes to.

A browser is a device of platform "webpush": its Push API subscription (endpoint URL, p256dh and auth keys)
is checked strictly (`check_subscription`), sealed on the row (inbox.sealed), and found again by the
SHA-256 of its endpoint, kept in `token`.

A device is one (practice, platform, token): the same token registered again in a practice is the same
device, moved to whoever in that practice registered it last and enabled again (a phone that changes hands,
or an app reinstalled after its token was reported dead); another practice's registration of the same token
is a device of its own (`register_device`). It belongs to the session that registered it, so signing out
(`accounts.revoke_token`) removes it; a device whose session was revoked by any other path (R4: a client's
messaging turned off) gets no pushes either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from tortoise.exceptions import IntegrityError

from inbox.context import InboxContext
from inbox.errors import Invalid, NotFound
from inbox.exchange import iso
from inbox.ids import MAX_ID
from inbox.models import Device, Participant
from inbox.sealed import open_webpush_subscription, seal_webpush_subscription
from inbox.store import devices as devices_store
from inbox.webhooks import host_may_be_public
from push.base import ALERT_TYPES, WebPushKeys

PLATFORMS = ("apns", "fcm", "webpush")
APPS = ("practice", "client")
ALERT_FLAGS = ALERT_TYPES  # appointment, new_message, appointment_request, video_appointment

# APNs tokens are hex (32 bytes today; Apple says the length may grow). FCM registration tokens are
# URL-safe text, about 150-200 characters.
_HEX = frozenset(string.hexdigits)
_FCM_CHARS = frozenset(string.ascii_letters + string.digits + "-_:.")
APNS_TOKEN_LEN = (64, 200)
FCM_TOKEN_LEN = (20, 512)
MAX_ENDPOINT = 2048  # push services' endpoints are 150–700 characters today
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


@dataclass(frozen=True)
class Subscription:
    """A browser's Push API subscription, checked (docs/api.md §3, POST /devices)."""

    endpoint: str
    p256dh: bytes
    auth: bytes

    def to_json(self) -> str:
        return json.dumps(
            {"endpoint": self.endpoint, "p256dh": _b64url(self.p256dh), "auth": _b64url(self.auth)},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Subscription:
        raw = json.loads(text)
        return cls(raw["endpoint"], _unb64url(raw["p256dh"]), _unb64url(raw["auth"]))

    @property
    def keys(self) -> WebPushKeys:
        return WebPushKeys(p256dh=self.p256dh, auth=self.auth)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def endpoint_token(endpoint: str) -> str:
    """What `Device.token` holds for a browser: found again by it, useless to send with."""
    return "sha256:" + hashlib.sha256(endpoint.encode()).hexdigest()


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
        # A browser's page finds its own device by it (the SHA-256 of its subscription's endpoint).
        "subscription_id": device.token if device.platform == "webpush" else None,
    }


# --- checking input ----------------------------------------------------------------------------------


def check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise Invalid("invalid_platform", 'platform must be "apns", "fcm" or "webpush".', field="platform")
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


def _bad_subscription(message: str, field: str) -> Invalid:
    return Invalid("invalid_subscription", message, field=field)


def check_endpoint(value: Any, *, allow_private: bool = False) -> str:
    """An https URL of a push service: a host, no credentials, no fragment, nothing but printable ASCII.
    A host that is a non-public address literal (or localhost) is refused here; a name is checked on the
    address actually connected to, at each push (gateway.public_resolver)."""
    if not isinstance(value, str) or not value:
        raise _bad_subscription(
            "subscription.endpoint must be the push service's https URL.", "subscription.endpoint"
        )
    ok = len(value) <= MAX_ENDPOINT and all(33 <= ord(c) < 127 for c in value)
    parts = None
    if ok:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - a bad port raises here
        except ValueError:
            parts = None
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.fragment
    ):
        raise _bad_subscription(
            f"subscription.endpoint must be an https:// URL of at most {MAX_ENDPOINT} characters, without "
            "credentials or fragment.",
            "subscription.endpoint",
        )
    if not allow_private and not host_may_be_public(parts.hostname):
        raise Invalid(
            "webpush_endpoint_not_public",
            "subscription.endpoint must reach a public address: loopback, private and other internal "
            "addresses are refused.",
            field="subscription.endpoint",
        )
    return value


def _key(keys: Mapping[str, Any], name: str, size: int, what: str) -> bytes:
    value = keys.get(name)
    field = f"subscription.keys.{name}"
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise _bad_subscription(f"{field} must be base64url text ({what}).", field)
    try:
        raw = _unb64url(value.rstrip("="))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise _bad_subscription(f"{field} must be {what}: {size} bytes, base64url-encoded.", field)
    return raw


def check_subscription(value: Any, *, allow_private: bool = False) -> Subscription:
    """A PushSubscription's JSON (`subscription.toJSON()` in the browser):
    `{endpoint, expirationTime?, keys: {p256dh, auth}}`."""
    if not isinstance(value, Mapping):
        raise _bad_subscription(
            'subscription must be the browser\'s PushSubscription as JSON: {"endpoint", "keys": {"p256dh", '
            '"auth"}}.',
            "subscription",
        )
    unknown = sorted(set(value) - {"endpoint", "expirationTime", "keys"})
    if unknown:
        raise _bad_subscription(f"Unknown field: subscription.{unknown[0]}.", f"subscription.{unknown[0]}")
    expiration = value.get("expirationTime")
    if expiration is not None and (isinstance(expiration, bool) or not isinstance(expiration, int | float)):
        raise _bad_subscription(
            "subscription.expirationTime must be null or a number.", "subscription.expirationTime"
        )
    endpoint = check_endpoint(value.get("endpoint"), allow_private=allow_private)
    keys = value.get("keys")
    if not isinstance(keys, Mapping):
        raise _bad_subscription("subscription.keys must hold p256dh and auth.", "subscription.keys")
    p256dh = _key(keys, "p256dh", 65, "the browser's P-256 public key, uncompressed")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise _bad_subscription(
            "subscription.keys.p256dh is not a point on the P-256 curve.", "subscription.keys.p256dh"
        ) from None
    auth = _key(keys, "auth", 16, "the browser's authentication secret")
    return Subscription(endpoint, p256dh, auth)


def subscription_of(ctx: InboxContext, device: Device) -> Subscription | None:
    """A browser device's subscription, opened; None for a phone, or a row without one."""
    sealed = open_webpush_subscription(ctx.keyring, device)
    return Subscription.from_json(sealed) if sealed is not None else None


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
    ctx: InboxContext,
    actor: Participant,
    auth_token_id: int | None,
    *,
    platform: str,
    token: str | None = None,
    app: str,
    subscription: Any = None,
    allow_private: bool = False,
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
    sub: Subscription | None = None
    if platform == "webpush":
        if token is not None:
            raise Invalid(
                "invalid_device_token", "A browser registers its subscription, not a token.", field="token"
            )
        if subscription is None:
            raise Invalid(
                "missing_field", "subscription is required for a webpush device.", field="subscription"
            )
        sub = check_subscription(subscription, allow_private=allow_private)
        token = endpoint_token(sub.endpoint)
    else:
        if subscription is not None:
            raise _bad_subscription("Only a webpush device has a subscription.", "subscription")
        if not isinstance(token, str):
            raise Invalid("missing_field", "token is required.", field="token")
        token = check_token(platform, token)
    app = check_app(app)
    practice_id = actor.practice_id
    existing = await devices_store.find_device(practice_id, platform, token)
    if existing is None:
        try:
            # In a savepoint: inside the caller's transaction, a refused insert must not abort it.
            device = await devices_store.add_device(
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
            if sub is not None:
                await _seal(ctx, device, sub)
            return device, True
        except IntegrityError:
            # The same token registered at the same moment from another request: one device.
            existing = await devices_store.get_device(practice_id, platform, token)
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
    await devices_store.set_registration(existing)
    if sub is not None:
        await _seal(ctx, existing, sub)
    return existing, moved


async def _seal(ctx: InboxContext, device: Device, sub: Subscription) -> None:
    # Sealed under the row's own id (R30), so the row comes first; a browser may bring new keys to the same
    # endpoint, so a registration again seals what it brought.
    await devices_store.set_subscription_cipher(
        device, seal_webpush_subscription(ctx.keyring, device.id, sub.to_json())
    )


async def get_own_device(actor: Participant, device_id: int) -> Device:
    device = None
    if 0 < device_id <= MAX_ID:
        device = await devices_store.get_device_for(actor.id, device_id)
    if device is None:
        raise NotFound("device")
    return device


async def list_devices(actor: Participant) -> list[Device]:
    return await devices_store.list_devices_for(actor.id)


async def update_alerts(actor: Participant, device_id: int, alerts: Mapping[str, Any]) -> Device:
    changes = check_alerts(alerts)
    device = await get_own_device(actor, device_id)
    await devices_store.set_alerts(device, {**default_alerts(), **device.alerts, **changes})
    return device


async def remove_device(actor: Participant, device_id: int) -> None:
    device = await get_own_device(actor, device_id)
    await devices_store.delete_device(device)


# --- the dispatcher's side ---------------------------------------------------------------------------


async def push_targets(participant_ids: Iterable[int], flag: str | None) -> dict[int, list[Device]]:
    """Each participant's devices that may get a push: enabled, opted in to `flag` (None: a badge update,
    which is not an alert and goes to every enabled device), and registered by a session still in force."""
    ids = list(set(participant_ids))
    by_participant: dict[int, list[Device]] = {pid: [] for pid in ids}
    if not ids:
        return by_participant
    found = await devices_store.list_enabled_devices_for(ids)
    session_ids = {d.auth_token_id for d in found if d.auth_token_id is not None}
    revoked: set[int] = set()
    if session_ids:
        revoked = await devices_store.get_revoked_session_ids(list(session_ids))
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
        if await devices_store.set_disabled(device_id, reason[:200]):
            disabled.append(device_id)
    return disabled
