"""Devices (`device`): phones and browsers that get pushes, their registration and alert flags.

A device is one (practice, platform, token); which registration wins, and which devices a push goes to, is
the domain's (`inbox.devices`, `inbox.pushes`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from inbox.models import AuthToken, Device
from inbox.store.orm import ids_of

# --- registration --------------------------------------------------------------------------------------


async def find_device(practice_id: int, platform: str, token: str) -> Device | None:
    """The practice's device of this platform and token, if one is registered."""
    return await Device.filter(practice_id=practice_id, platform=platform, token=token).first()


async def get_device(practice_id: int, platform: str, token: str) -> Device:
    """The practice's device of this platform and token (it exists); DoesNotExist otherwise."""
    return await Device.get(practice_id=practice_id, platform=platform, token=token)


async def add_device(
    *,
    practice_id: int,
    participant_id: int,
    platform: str,
    token: str,
    app: str,
    alerts: dict[str, bool],
    enabled: bool,
    auth_token_id: int | None,
    created_at: datetime,
    last_seen_at: datetime,
) -> Device:
    """A new device; IntegrityError when the same (practice, platform, token) was registered a moment ago.

    In a savepoint: inside the caller's transaction, a refused insert must not abort it (PostgreSQL)."""
    async with in_transaction():
        return await Device.create(
            practice_id=practice_id,
            participant_id=participant_id,
            platform=platform,
            token=token,
            app=app,
            alerts=alerts,
            enabled=enabled,
            auth_token_id=auth_token_id,
            created_at=created_at,
            last_seen_at=last_seen_at,
        )


async def set_registration(device: Device) -> None:
    """Saves what registering an existing device again changes on it: its owner, app, alerts, enabled and
    disabled reason, session and last seen time."""
    cols = ["participant_id", "app", "enabled", "disabled_reason", "auth_token_id", "alerts", "last_seen_at"]
    await device.save(update_fields=cols)


async def set_subscription_cipher(device: Device, cipher: bytes) -> None:
    """A browser device's sealed subscription."""
    device.subscription_cipher = cipher
    await device.save(update_fields=["subscription_cipher"])


# --- a person's own devices ----------------------------------------------------------------------------


async def get_device_for(participant_id: int, device_id: int) -> Device | None:
    """The device, if it is this participant's."""
    return await Device.filter(id=device_id, participant_id=participant_id).first()


async def list_devices_for(participant_id: int) -> list[Device]:
    """The participant's devices, oldest first."""
    return list(await Device.filter(participant_id=participant_id).order_by("id"))


async def set_alerts(device: Device, alerts: dict[str, bool]) -> None:
    device.alerts = alerts
    await device.save(update_fields=["alerts"])


async def delete_device(device: Device) -> None:
    await device.delete()


# --- pushes --------------------------------------------------------------------------------------------


async def list_enabled_devices_for(participant_ids: Collection[int]) -> list[Device]:
    """The enabled devices of these participants, oldest first."""
    return list(await Device.filter(participant_id__in=list(participant_ids), enabled=True).order_by("id"))


async def get_revoked_session_ids(session_ids: Collection[int]) -> set[int]:
    """Of these sessions (`auth_token` ids), the revoked ones: their devices get no pushes."""
    return set(await ids_of(AuthToken.filter(id__in=list(session_ids), revoked_at__isnull=False), "id"))


async def get_has_other_phones(participant_id: int, exclude_auth_token_id: int | None) -> bool:
    """Whether the participant has an enabled device that is not a browser, other than the one the session
    `exclude_auth_token_id` registered (any, when None)."""
    others = Device.filter(participant_id=participant_id, enabled=True).exclude(platform="webpush")
    if exclude_auth_token_id is not None:
        others = others.filter(Q(auth_token_id__isnull=True) | Q(auth_token_id__not=exclude_auth_token_id))
    return await others.exists()


async def set_disabled(device_id: int, reason: str) -> int:
    """Disables the device if it is enabled, with why; 1 when it was, 0 when not."""
    return await Device.filter(id=device_id, enabled=True).update(enabled=False, disabled_reason=reason)
