"""How long history is kept (docs/operations.md, "Backups and retention"), and its pruning.

The dispatcher calls `prune_once` now and then (gateway.dispatcher): each call removes at most `batch` rows of
each kind, in short transactions, so a first prune of a large backlog never holds the database for long and
sends go on between batches. Every question it asks is served by an index (migration 0008_backup).

Pruned, once older than the policy says:
- the outbox's history: rows that are done, skipped or failed, by when they finished. A pending row is work
  to do and is never pruned, however old.
- webhook delivery logs that are finished (delivered, failed or cancelled), by when they were made.
- tokens and links: sessions, app tokens and API keys some days after they expired or were revoked; magic,
  sign-in, reset and invitation links some days after they expired. A pruned token is unknown, which every
  check already treats as ended. The devices a pruned *revoked* session registered go with it: they were
  kept from pushes by that revocation, and must not be revived by its absence (inbox.devices).

Never pruned here: messages and the audit log. They are the practice's records, kept as records law asks;
nothing in this module touches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from inbox.models import AuthToken, Device, LinkToken, OutboxJob, WebhookDelivery

DAY_S = 86400
# What `prune_once` counts, by kind (also the `kind` label of securemsg_retention_pruned_rows_total).
KINDS = ("outbox", "webhook_deliveries", "expired_tokens", "revoked_tokens", "links")
OUTBOX_DONE = ("done", "skipped", "failed")
DELIVERY_DONE = ("delivered", "failed", "cancelled")


@dataclass(frozen=True)
class Policy:
    outbox_days: int = 30
    webhook_deliveries_days: int = 30
    tokens_days: int = 7
    batch: int = 500  # rows of each kind per call


def candidates(policy: Policy, now: datetime) -> dict[str, Any]:
    """What one call of `prune_once` would remove, as queries of row ids (at most `batch` each), by kind."""

    def before(days: int) -> datetime:
        return now - timedelta(seconds=days * DAY_S)

    n = policy.batch
    tokens = before(policy.tokens_days)
    return {
        "outbox": OutboxJob.filter(finished_at__lt=before(policy.outbox_days), status__in=OUTBOX_DONE)
        .limit(n)
        .values_list("id", flat=True),
        "webhook_deliveries": WebhookDelivery.filter(
            created_at__lt=before(policy.webhook_deliveries_days), status__in=DELIVERY_DONE
        )
        .limit(n)
        .values_list("id", flat=True),
        # Two questions rather than one with OR, so that each is one range of one index.
        "expired_tokens": AuthToken.filter(expires_at__lt=tokens).limit(n).values_list("id", flat=True),
        "revoked_tokens": AuthToken.filter(revoked_at__lt=tokens).limit(n).values_list("id", flat=True),
        "links": LinkToken.filter(expires_at__lt=tokens).limit(n).values_list("id", flat=True),
    }


async def prune_once(policy: Policy, now: datetime) -> dict[str, int]:
    """Remove up to `policy.batch` rows of each kind that the policy no longer keeps; how many of each.
    A kind that answers `batch` has more waiting."""
    found = candidates(policy, now)
    removed: dict[str, int] = {}
    for kind, query in found.items():
        ids = [int(i) for i in await query]
        if not ids:
            removed[kind] = 0
            continue
        async with in_transaction():
            if kind == "outbox":
                # Guarded again, in case a row was taken back into work since it was read.
                removed[kind] = await OutboxJob.filter(id__in=ids, status__in=OUTBOX_DONE).delete()
            elif kind == "webhook_deliveries":
                removed[kind] = await WebhookDelivery.filter(id__in=ids, status__in=DELIVERY_DONE).delete()
            elif kind == "links":
                removed[kind] = await LinkToken.filter(id__in=ids).delete()
            else:
                revoked = await AuthToken.filter(id__in=ids, revoked_at__isnull=False).values_list(
                    "id", flat=True
                )
                if revoked:
                    await Device.filter(auth_token_id__in=list(revoked)).delete()
                removed[kind] = await AuthToken.filter(id__in=ids).delete()
    return removed
