"""Outbox rows (`outbox_job`): writing them, the dispatcher's claims on them, and settling them.

Every update of a claimed row is guarded by the claim (`claimed_by`) and by `status='pending'`, so a worker
whose claim was taken over, or a row already settled, changes nothing. Which rows a change implies, and
when, is the domain's (`inbox.outbox`, `inbox.notify`, `inbox.pushes`); these only run the statements.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from tortoise import Tortoise
from tortoise.expressions import Q
from tortoise.functions import Count, Min

from inbox.models import OutboxJob
from inbox.store import sql as rawsql

# --- writing rows --------------------------------------------------------------------------------------


async def add_job(kind: str, *, due_at: datetime, created_at: datetime, **fields: Any) -> OutboxJob:
    """One row; `fields` are its other columns (practice_id, recipient_id, payload, …)."""
    return await OutboxJob.create(kind=kind, due_at=due_at, created_at=created_at, **fields)


async def add_rows(rows: Sequence[dict[str, Any]]) -> None:
    """Several rows at once, each given as its column values."""
    await OutboxJob.bulk_create([OutboxJob(**row) for row in rows])


async def set_skipped_for_message(
    message_id: int, kinds: Sequence[str], *, last_error: str, finished_at: datetime
) -> int:
    """The message's pending rows of these kinds are skipped, with why; how many were."""
    return await OutboxJob.filter(message_id=message_id, status="pending", kind__in=kinds).update(
        status="skipped", last_error=last_error, finished_at=finished_at
    )


# --- claiming ------------------------------------------------------------------------------------------


async def set_claim_on_due_rows(
    worker_id: str, *, until: datetime, now: datetime, limit: int, kinds: Sequence[str] | None
) -> list[OutboxJob]:
    """Claim up to `limit` due, unclaimed (or expired-claim) pending rows (of these kinds, when given) for
    `worker_id` until `until`, the earliest due first; the rows now held, in that order.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several workers never take the same row. SQLite has one writer
    at a time, so the same UPDATE … RETURNING is already a single claimant.
    """
    conn = Tortoise.get_connection("default")
    pg = conn.capabilities.dialect == "postgres"
    ph = (lambda i: f"${i}") if pg else (lambda i: "?")
    kind_sql = ""
    params: list[Any] = [worker_id, until, now, now]
    if kinds:
        marks = ",".join(ph(5 + i) for i in range(len(kinds)))
        kind_sql = f" AND kind IN ({marks})"
        params += list(kinds)
    params.append(limit)
    lock = " FOR UPDATE SKIP LOCKED" if pg else ""
    sql = (
        f"UPDATE outbox_job SET claimed_by={ph(1)}, claimed_until={ph(2)} WHERE id IN ("  # noqa: S608
        f"SELECT id FROM outbox_job WHERE status='pending' AND due_at <= {ph(3)} "
        f"AND (claimed_until IS NULL OR claimed_until < {ph(4)}){kind_sql} "
        f"ORDER BY due_at, id LIMIT {ph(len(params))}{lock}) RETURNING id"
    )
    rows = await conn.execute_query_dict(sql, params)
    ids = [int(r["id"]) for r in rows]
    if not ids:
        return []
    return list(await OutboxJob.filter(id__in=ids, claimed_by=worker_id).order_by("due_at", "id"))


async def set_claim_on_rows(
    worker_id: str, ids: Sequence[int], *, now: datetime, until: datetime
) -> list[OutboxJob]:
    """Claim these pending rows for `worker_id` until `until`, due or not, unless another worker's claim on
    one still holds at `now`; the rows of these now held by `worker_id`."""
    await OutboxJob.filter(
        Q(claimed_until=None) | Q(claimed_until__lt=now), id__in=list(ids), status="pending"
    ).update(claimed_by=worker_id, claimed_until=until)
    return list(await OutboxJob.filter(id__in=list(ids), claimed_by=worker_id, status="pending"))


async def set_claim_until(ids: Sequence[int], claimant: str, until: datetime) -> set[int]:
    """Extend the claim `claimant` holds on these pending rows to `until`; the ids of those it still held."""
    sql = (
        f"UPDATE outbox_job SET claimed_until=? WHERE id IN ({rawsql.marks(len(ids))}) "  # noqa: S608
        "AND claimed_by=? AND status='pending' RETURNING id"
    )
    conn = rawsql.client()
    rows = await conn.execute_query_dict(
        rawsql.pg_sql(sql) if rawsql.is_postgres(conn) else sql, [until, *ids, claimant]
    )
    return {int(r["id"]) for r in rows}


# --- settling a claimed row (each guarded by its claim and by status='pending') ------------------------


async def set_released(job: OutboxJob) -> None:
    """The claim on the row is given up, the row left as it was."""
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
        claimed_by=None, claimed_until=None
    )


async def set_finished(job: OutboxJob, status: str, note: str | None, finished_at: datetime) -> None:
    """The row leaves the queue as `status` (done, skipped, failed), with its note."""
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
        status=status, last_error=note, finished_at=finished_at, claimed_until=None
    )


async def set_postponed(job: OutboxJob, due_at: datetime, note: str | None) -> None:
    """Due again at `due_at`, unclaimed; the attempts are left as they are."""
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
        due_at=due_at,
        last_error=note,
        claimed_until=None,
        claimed_by=None,
    )


async def set_given_up(job: OutboxJob, attempts: int, error: str, finished_at: datetime) -> None:
    """The row failed for good after `attempts` attempts, with why."""
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
        status="failed",
        attempts=attempts,
        last_error=error,
        finished_at=finished_at,
        claimed_until=None,
    )


async def set_retry(job: OutboxJob, attempts: int, error: str, due_at: datetime) -> None:
    """A failed attempt: counted, with its error; due again at `due_at`, unclaimed."""
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by, status="pending").update(
        attempts=attempts,
        last_error=error,
        due_at=due_at,
        claimed_until=None,
        claimed_by=None,
    )


async def set_payload(job: OutboxJob, payload: dict[str, Any]) -> None:
    """The row's payload, while this claim holds it (not guarded by status)."""
    await OutboxJob.filter(id=job.id, claimed_by=job.claimed_by).update(payload=payload)


# --- reads ---------------------------------------------------------------------------------------------


async def get_backlog(now: datetime) -> list[dict[str, Any]]:
    """Per kind of pending row: `kind`, `n` (how many), `due` (how many of them are due at `now`) and
    `oldest` (the earliest due_at). One grouped query on the (status, due_at) index."""
    rows: list[dict[str, Any]] = await (
        OutboxJob.filter(status="pending")
        .group_by("kind")
        .annotate(n=Count("id"), due=Count("id", _filter=Q(due_at__lte=now)), oldest=Min("due_at"))
        .values("kind", "n", "due", "oldest")
    )
    return rows


async def list_pending(
    kind: str, recipient_ids: Collection[int], exclude_ids: Collection[int]
) -> list[OutboxJob]:
    """The pending rows of this kind for these recipients, but those of `exclude_ids`, claimed or not."""
    return list(
        await OutboxJob.filter(kind=kind, status="pending", recipient_id__in=list(recipient_ids)).exclude(
            id__in=list(exclude_ids)
        )
    )


async def list_unclaimed_pending(recipient_id: int, kind: str) -> list[OutboxJob]:
    """The recipient's pending rows of this kind that no worker has claimed."""
    return list(
        await OutboxJob.filter(
            recipient_id=recipient_id, kind=kind, status="pending", claimed_by__isnull=True
        )
    )


async def list_done_since(
    recipient_ids: Collection[int], kinds: Collection[str], since: datetime, exclude_ids: Collection[int]
) -> list[OutboxJob]:
    """The rows of these kinds for these recipients finished as done at or after `since`, but those of
    `exclude_ids`."""
    return list(
        await OutboxJob.filter(
            recipient_id__in=list(recipient_ids), kind__in=list(kinds), status="done", finished_at__gte=since
        ).exclude(id__in=list(exclude_ids))
    )


async def list_not_failed(
    kind: str, message_ids: Collection[int], recipient_ids: Collection[int]
) -> list[OutboxJob]:
    """The rows of this kind about these messages for these recipients, in any status but failed."""
    return list(
        await OutboxJob.filter(
            kind=kind, message_id__in=list(message_ids), recipient_id__in=list(recipient_ids)
        ).exclude(status="failed")
    )
