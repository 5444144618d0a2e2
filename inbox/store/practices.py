"""Practices (`practice`): their creation, settings and flags, the practices a sign-in may choose from,
and the lock on a practice's row that serialises changes to its account owners."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from inbox.models import Practice


async def get_practice(practice_id: int) -> Practice:
    """The practice (it exists: every caller's practice does); DoesNotExist otherwise."""
    return await Practice.get(id=practice_id)


async def get_practice_or_none(practice_id: int) -> Practice | None:
    return await Practice.get_or_none(id=practice_id)


async def add_practice(name: str, created_at: datetime) -> Practice:
    return await Practice.create(name=name, created_at=created_at)


async def set_practice(practice: Practice) -> None:
    """Write back every column of `practice` (its settings)."""
    await practice.save()


async def list_practices(ids: Collection[int]) -> list[Practice]:
    """These practices, by id."""
    return list(await Practice.filter(id__in=list(ids)).order_by("id"))


async def get_practices(ids: Collection[int]) -> dict[int, Practice]:
    """These practices, under their ids."""
    return {p.id: p for p in await Practice.filter(id__in=list(ids))}


async def lock_practice(practice_id: int) -> None:
    """Lock the practice's row until the transaction ends (`SELECT … FOR UPDATE` on PostgreSQL; SQLite runs
    one writer at a time anyway). Call it inside `db.transaction()`."""
    await Practice.filter(id=practice_id).select_for_update().first()
