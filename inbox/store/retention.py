"""Pruning history (`inbox.retention`): the outbox's finished rows, finished webhook deliveries, long-ended
tokens and links, and the devices of pruned revoked sessions. Which rows the policy no longer keeps is
the domain's to say (cutoffs, finished statuses); these find and delete them."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from inbox.models import AuthToken, Device, LinkToken, OutboxJob, WebhookDelivery
from inbox.store.orm import ids_of


def candidate_queries(
    *,
    outbox_before: datetime,
    outbox_done: Collection[str],
    deliveries_before: datetime,
    deliveries_done: Collection[str],
    tokens_before: datetime,
    limit: int,
) -> dict[str, Any]:
    """The ids one prune may remove, by kind, as queries not run yet (at most `limit` ids each): the prune
    runs each in turn, between the deletes (`list_candidate_ids`), and tests read their query plans."""
    return {
        "outbox": OutboxJob.filter(finished_at__lt=outbox_before, status__in=outbox_done)
        .limit(limit)
        .values_list("id", flat=True),
        "webhook_deliveries": WebhookDelivery.filter(
            created_at__lt=deliveries_before, status__in=deliveries_done
        )
        .limit(limit)
        .values_list("id", flat=True),
        # Two questions rather than one with OR, so that each is one range of one index.
        "expired_tokens": AuthToken.filter(expires_at__lt=tokens_before)
        .limit(limit)
        .values_list("id", flat=True),
        "revoked_tokens": AuthToken.filter(revoked_at__lt=tokens_before)
        .limit(limit)
        .values_list("id", flat=True),
        "links": LinkToken.filter(expires_at__lt=tokens_before).limit(limit).values_list("id", flat=True),
    }


async def list_candidate_ids(query: Any) -> list[int]:
    """Run one of `candidate_queries`."""
    return [int(i) for i in await query]


async def delete_outbox_jobs(ids: Collection[int], statuses: Collection[str]) -> int:
    """Delete these outbox rows that are (still) in one of these statuses; how many went."""
    return await OutboxJob.filter(id__in=ids, status__in=statuses).delete()


async def delete_webhook_deliveries(ids: Collection[int], statuses: Collection[str]) -> int:
    """Delete these deliveries that are in one of these statuses; how many went."""
    return await WebhookDelivery.filter(id__in=ids, status__in=statuses).delete()


async def delete_links(ids: Collection[int]) -> int:
    return await LinkToken.filter(id__in=ids).delete()


async def list_revoked_token_ids(ids: Collection[int]) -> list[int]:
    """Those of these tokens that were revoked."""
    return await ids_of(AuthToken.filter(id__in=ids, revoked_at__isnull=False), "id")


async def delete_devices_of_tokens(token_ids: Collection[int]) -> None:
    """Delete the devices these tokens (sessions) registered."""
    await Device.filter(auth_token_id__in=list(token_ids)).delete()


async def delete_tokens(ids: Collection[int]) -> int:
    return await AuthToken.filter(id__in=ids).delete()
