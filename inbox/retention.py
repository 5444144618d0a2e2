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

from inbox import db
from inbox.store import retention as store

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
    """What one call of `prune_once` would remove, as queries of row ids (at most `batch` each), by kind,
    not run yet (`prune_once` runs each in turn, after the deletes of the kinds before it)."""

    def before(days: int) -> datetime:
        return now - timedelta(seconds=days * DAY_S)

    tokens = before(policy.tokens_days)
    return store.candidate_queries(
        outbox_before=before(policy.outbox_days),
        outbox_done=OUTBOX_DONE,
        deliveries_before=before(policy.webhook_deliveries_days),
        deliveries_done=DELIVERY_DONE,
        tokens_before=tokens,
        limit=policy.batch,
    )


async def prune_once(policy: Policy, now: datetime) -> dict[str, int]:
    """Remove up to `policy.batch` rows of each kind that the policy no longer keeps; how many of each.
    A kind that answers `batch` has more waiting."""
    found = candidates(policy, now)
    removed: dict[str, int] = {}
    for kind, query in found.items():
        ids = await store.list_candidate_ids(query)
        if not ids:
            removed[kind] = 0
            continue
        async with db.transaction():
            if kind == "outbox":
                # Guarded again, in case a row was taken back into work since it was read.
                removed[kind] = await store.delete_outbox_jobs(ids, OUTBOX_DONE)
            elif kind == "webhook_deliveries":
                removed[kind] = await store.delete_webhook_deliveries(ids, DELIVERY_DONE)
            elif kind == "links":
                removed[kind] = await store.delete_links(ids)
            else:
                revoked = await store.list_revoked_token_ids(ids)
                if revoked:
                    await store.delete_devices_of_tokens(revoked)
                removed[kind] = await store.delete_tokens(ids)
    return removed
