"""Outgoing webhooks (docs/api.md §3, Integration): the practice's other systems hear what happens here.

Events carry ids only, never text or names: `message.created`, `message.removed`, `conversation.read`.
`enqueue_event` is called inside the transaction of the change itself, so a delivery exists exactly when
the change was committed. Each delivery is a `WebhookDelivery` (what the practice sees at
GET /webhooks/{id}/deliveries) and an outbox row (the work): the dispatcher POSTs the body signed with
HMAC-SHA256 over "{timestamp}.{body}" under the webhook's own secret, retries 408/429/5xx and connection
errors with backoff, and gives up after a day. The `X-Securemsg-Delivery` id is the same on every attempt,
so a receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from inbox import db, outbox, sealed
from inbox.context import InboxContext
from inbox.crypto import DataKeyring
from inbox.errors import Conflict, Invalid, NotFound
from inbox.ids import MAX_ID
from inbox.models import OutboxJob, Webhook, WebhookDelivery
from inbox.retention import DELIVERY_DONE
from inbox.store import webhooks as webhooks_store

EVENTS = ("message.created", "message.removed", "conversation.read")
WEBHOOK = "webhook"  # the outbox kind
MAX_WEBHOOKS_PER_PRACTICE = 10
MAX_URL = 1000
SIGNATURE_HEADER = "X-Securemsg-Signature"
DELIVERY_HEADER = "X-Securemsg-Delivery"
EVENT_HEADER = "X-Securemsg-Event"


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events),
        "active": hook.active,
        "created_at": _iso(hook.created_at),
    }


def delivery_json(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.delivery_id,
        "event": d.event,
        "status": d.status,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": _iso(d.created_at),
        "delivered_at": _iso(d.delivered_at),
        "payload": d.payload,
    }


def _iso(dt: Any) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


# --- subscriptions -----------------------------------------------------------------------------------


def check_url(url: str, *, allow_private: bool = False) -> str:
    url = url.strip()
    if not _url_ok(url):
        raise Invalid(
            "invalid_url",
            f"url must be an http:// or https:// address of at most {MAX_URL} characters, without "
            "credentials or fragment, and not a link-local or multicast address.",
            field="url",
        )
    if not allow_private and not host_may_be_public(urlsplit(url).hostname or ""):
        raise Invalid(
            "webhook_url_not_public",
            "url must reach a public address: loopback, private and other internal addresses are refused.",
            field="url",
        )
    return url


def is_public_address(text: str) -> bool:
    """An address on the public internet: not loopback, private (10/8, 172.16/12, 192.168/16), unique-local
    (fc00::/7), link-local, shared (100.64/10), reserved, multicast or unspecified. Webhooks reach only
    these unless SECUREMSG_WEBHOOK_ALLOW_PRIVATE is set: otherwise a webhook would let an integration reach
    the server's own network, and its delivery log would tell it which ports answer."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def host_may_be_public(host: str) -> bool:
    """False for an address literal that is not public and for `localhost` (and its subdomains); a name
    is resolved and checked only at delivery, on the address actually connected to."""
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return True
    return is_public_address(host)


def _url_ok(url: str) -> bool:
    """http(s) with a host, no credentials, no fragment; never a link-local, multicast or unspecified
    address literal (the cloud metadata service lives at 169.254.169.254). Names are not resolved here."""
    if not url or len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.username is not None or parts.password is not None or parts.fragment:
        return False
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return True  # a name, not an address literal
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_link_local or address.is_multicast or address.is_unspecified)


def check_events(events: Sequence[Any]) -> list[str]:
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise Invalid(
            "invalid_events", f"events must be a non-empty list from: {', '.join(EVENTS)}.", field="events"
        )
    return list(dict.fromkeys(events))


async def create_webhook(
    ctx: InboxContext, practice_id: int, url: str, events: Sequence[Any], *, allow_private: bool = False
) -> tuple[Webhook, str]:
    url = check_url(url, allow_private=allow_private)
    chosen = check_events(events)
    if await webhooks_store.get_active_count(practice_id) >= MAX_WEBHOOKS_PER_PRACTICE:
        raise Conflict(
            "too_many_webhooks",
            f"A practice may have at most {MAX_WEBHOOKS_PER_PRACTICE} webhooks; remove one.",
        )
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with db.transaction():
        # Sealed under the row's own id (R30), so the row comes first; the clear column stays empty.
        hook = await webhooks_store.add_webhook(practice_id, url, chosen, ctx.clock.now())
        await webhooks_store.set_secret_cipher(hook, sealed.seal_webhook_secret(ctx.keyring, hook.id, secret))
    return hook, secret


async def get_webhook(practice_id: int, webhook_id: int) -> Webhook:
    hook = None
    if 0 < webhook_id <= MAX_ID:
        hook = await webhooks_store.get_webhook(practice_id, webhook_id)
    if hook is None:
        raise NotFound("webhook")
    return hook


async def list_webhooks(practice_id: int) -> list[Webhook]:
    return await webhooks_store.list_active_webhooks(practice_id)


async def deactivate(practice_id: int, webhook_id: int) -> Webhook:
    """Stop a webhook: nothing new is queued for it and what is waiting is dropped; its history stays."""
    hook = await get_webhook(practice_id, webhook_id)
    await webhooks_store.set_inactive(hook)
    return hook


async def list_deliveries(
    practice_id: int, webhook_id: int, *, before: int | None = None, limit: int = 50
) -> dict[str, Any]:
    """Newest first, paged by `before` (the `next_before` of the previous page)."""
    hook = await get_webhook(practice_id, webhook_id)
    rows = await webhooks_store.list_deliveries(hook.id, before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [delivery_json(d) for d in rows], "next_before": rows[-1].id if more and rows else None}


# --- deliveries --------------------------------------------------------------------------------------


def new_delivery(event: str, data: Mapping[str, int], now: datetime) -> tuple[str, dict[str, Any]]:
    """A delivery's id and the body every attempt sends (also used by the send path, `inbox.sending`)."""
    delivery_id = uuid.uuid4().hex
    return delivery_id, {"id": delivery_id, "event": event, "created_at": _iso(now), "data": dict(data)}


async def enqueue_event(ctx: InboxContext, practice_id: int, event: str, data: Mapping[str, int]) -> int:
    """Queue one delivery per active webhook of the practice that subscribed to `event` (call inside the
    transaction of the change). `data` holds ids only. Returns how many were queued."""
    assert event in EVENTS
    hooks = [h for h in await webhooks_store.list_active_webhooks_unordered(practice_id) if event in h.events]
    now = ctx.clock.now()
    for hook in hooks:
        delivery_id, body = new_delivery(event, data, now)
        delivery = await webhooks_store.add_delivery(hook.id, delivery_id, event, body, now)
        await outbox.enqueue(ctx, WEBHOOK, practice_id=practice_id, payload={"delivery": delivery.id})
    return len(hooks)


def body_bytes(delivery: WebhookDelivery) -> bytes:
    """The exact bytes that are signed and sent; the same on every attempt."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def signed_headers(
    keyring: DataKeyring, hook: Webhook, delivery: WebhookDelivery, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(sealed.open_webhook_secret(keyring, hook), timestamp, body),
        DELIVERY_HEADER: delivery.delivery_id,
        EVENT_HEADER: delivery.event,
    }


async def load_delivery(job: OutboxJob) -> tuple[WebhookDelivery, Webhook] | str:
    """The delivery and its webhook for an outbox row, or why there is nothing to send any more."""
    delivery = await webhooks_store.get_delivery(int(job.payload.get("delivery", -1)))
    if delivery is None:
        return "the delivery no longer exists"
    if delivery.status in DELIVERY_DONE:
        # Its outcome was recorded, but not its outbox row's: a worker died between the two (issue #14).
        return f"already {delivery.status}"
    hook = await webhooks_store.get_webhook_by_id(delivery.webhook_id)
    if not hook.active:
        await webhooks_store.set_delivery_cancelled(delivery.id, "webhook removed")
        return "webhook removed"
    return delivery, hook


async def record_attempt(
    ctx: InboxContext,
    delivery: WebhookDelivery,
    *,
    status: str,  # delivered | pending (will retry) | failed
    status_code: int | None,
    error: str | None,
) -> None:
    now = ctx.clock.now()
    await webhooks_store.set_attempt(
        delivery.id,
        status=status,
        attempts=delivery.attempts + 1,
        last_status_code=status_code,
        last_error=error[:2000] if error else None,
        delivered_at=now if status == "delivered" else None,
    )
