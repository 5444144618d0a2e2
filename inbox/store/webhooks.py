"""Outgoing webhooks (`webhook`) and their deliveries (`webhook_delivery`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from inbox.models import Webhook, WebhookDelivery

# --- webhooks --------------------------------------------------------------------------------------------


async def get_active_count(practice_id: int) -> int:
    """How many active webhooks the practice has."""
    return await Webhook.filter(practice_id=practice_id, active=True).count()


async def add_webhook(practice_id: int, url: str, events: list[str], created_at: datetime) -> Webhook:
    """A new active webhook, its clear `secret` column empty (the secret is sealed under the row's id:
    `set_secret_cipher`)."""
    return await Webhook.create(
        practice_id=practice_id,
        url=url,
        events=events,
        secret="",
        active=True,
        created_at=created_at,
    )


async def set_secret_cipher(hook: Webhook, cipher: bytes) -> None:
    hook.secret_cipher = cipher
    await hook.save(update_fields=["secret_cipher"])


async def get_webhook(practice_id: int, webhook_id: int) -> Webhook | None:
    """The practice's webhook (active or not), or None."""
    return await Webhook.filter(id=webhook_id, practice_id=practice_id).first()


async def get_webhook_by_id(webhook_id: int) -> Webhook:
    """The webhook (it exists: a delivery's webhook does); DoesNotExist otherwise."""
    return await Webhook.get(id=webhook_id)


async def list_active_webhooks(practice_id: int) -> list[Webhook]:
    """The practice's active webhooks, oldest first."""
    return list(await Webhook.filter(practice_id=practice_id, active=True).order_by("id"))


async def list_active_webhooks_unordered(practice_id: int) -> list[Webhook]:
    """The practice's active webhooks, in no particular order (those to queue an event's deliveries for)."""
    return list(await Webhook.filter(practice_id=practice_id, active=True))


async def set_inactive(hook: Webhook) -> None:
    hook.active = False
    await hook.save(update_fields=["active"])


# --- deliveries ------------------------------------------------------------------------------------------


async def add_delivery(
    webhook_id: int, delivery_id: str, event: str, payload: dict[str, Any], created_at: datetime
) -> WebhookDelivery:
    return await WebhookDelivery.create(
        webhook_id=webhook_id, delivery_id=delivery_id, event=event, payload=payload, created_at=created_at
    )


async def get_delivery(delivery_id: int) -> WebhookDelivery | None:
    """The delivery of this row id (not its `delivery_id`), or None."""
    return await WebhookDelivery.filter(id=delivery_id).first()


async def list_deliveries(webhook_id: int, *, before: int | None, limit: int) -> list[WebhookDelivery]:
    """The webhook's deliveries, newest first, those with an id below `before` when given, at most `limit`."""
    query = WebhookDelivery.filter(webhook_id=webhook_id)
    if before is not None:
        query = query.filter(id__lt=before)
    return list(await query.order_by("-id").limit(limit))


async def set_delivery_cancelled(delivery_id: int, why: str) -> None:
    await WebhookDelivery.filter(id=delivery_id).update(status="cancelled", last_error=why)


async def set_attempt(
    delivery_id: int,
    *,
    status: str,
    attempts: int,
    last_status_code: int | None,
    last_error: str | None,
    delivered_at: datetime | None,
) -> None:
    """The outcome of an attempt: the delivery's status, attempts so far, last answer or error, and when it
    was delivered (None until it is)."""
    await WebhookDelivery.filter(id=delivery_id).update(
        status=status,
        attempts=attempts,
        last_status_code=last_status_code,
        last_error=last_error,
        delivered_at=delivered_at,
    )
