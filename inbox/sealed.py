"""Secrets the server must read back — TOTP secrets, webhook signing secrets and browsers' push
subscriptions — sealed at rest (R30).

They are encrypted like message bodies (inbox.crypto, the data keyring), with associated data that binds each
to its row: a TOTP secret copied onto another person's row, or one webhook's secret onto another webhook,
does not open. `securemsg rotate-data-key` re-encrypts them with the rest (inbox.rotation).

Before migration 0005_keys both were stored in clear (`participant.totp_secret`, `webhook.secret`).
`seal_plaintext_rows` moves what those columns still hold into the sealed columns and empties them; the
command line runs it after every migration, where the data key is at hand.
"""

from __future__ import annotations

from inbox.crypto import DataKeyring
from inbox.models import Device, Participant, Webhook
from inbox.store import keys


def totp_context(participant_id: int) -> str:
    return f"totp-secret:{participant_id}"


def webhook_secret_context(webhook_id: int) -> str:
    return f"webhook-secret:{webhook_id}"


def webpush_context(device_id: int) -> str:
    return f"webpush-subscription:{device_id}"


def seal_webpush_subscription(keyring: DataKeyring, device_id: int, subscription: str) -> bytes:
    """The subscription as JSON ({"endpoint", "p256dh", "auth"}), bound to its device row."""
    return keyring.encrypt(subscription, webpush_context(device_id))


def open_webpush_subscription(keyring: DataKeyring, device: Device) -> str | None:
    if device.subscription_cipher is None:
        return None
    return keyring.decrypt(bytes(device.subscription_cipher), webpush_context(device.id))


def seal_totp(keyring: DataKeyring, member: Participant, secret: str) -> bytes:
    return keyring.encrypt(secret, totp_context(member.id))


def open_totp(keyring: DataKeyring, member: Participant) -> str | None:
    blob = member.totp_secret_cipher
    if blob is None:
        return None
    return keyring.decrypt(bytes(blob), totp_context(member.id))


def seal_webhook_secret(keyring: DataKeyring, webhook_id: int, secret: str) -> bytes:
    return keyring.encrypt(secret, webhook_secret_context(webhook_id))


def open_webhook_secret(keyring: DataKeyring, hook: Webhook) -> str:
    if hook.secret_cipher is None:
        raise ValueError(f"webhook {hook.id} has no sealed secret: run `securemsg migrate`")
    return keyring.decrypt(bytes(hook.secret_cipher), webhook_secret_context(hook.id))


async def seal_plaintext_rows(keyring: DataKeyring, *, batch_size: int = 500) -> int:
    """Seal every secret still stored in clear; returns how many. Idempotent: a second run finds none."""
    done = 0
    while members := await keys.list_plaintext_totp_members(batch_size):
        await keys.set_totp_secrets_sealed(
            [(member.id, seal_totp(keyring, member, member.totp_secret or "")) for member in members]
        )
        done += len(members)
    while hooks := await keys.list_unsealed_webhooks(batch_size):
        await keys.set_webhook_secrets_sealed(
            [(hook.id, seal_webhook_secret(keyring, hook.id, hook.secret)) for hook in hooks]
        )
        done += len(hooks)
    return done
