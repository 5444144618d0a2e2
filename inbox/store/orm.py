"""Small helpers over Tortoise querysets, shared by the store's modules."""

from __future__ import annotations

from typing import Any


async def ids_of(query: Any, field: str) -> list[int]:
    """A flat list of integer ids from a queryset (typed, for the callers' sake)."""
    rows: list[Any] = await query.values_list(field, flat=True)
    return [int(r) for r in rows]
