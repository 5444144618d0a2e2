"""Practices (`practice`): their settings and flags."""

from __future__ import annotations

from inbox.models import Practice


async def get_practice(practice_id: int) -> Practice:
    """The practice (it exists: every caller's practice does); DoesNotExist otherwise."""
    return await Practice.get(id=practice_id)


async def get_practice_or_none(practice_id: int) -> Practice | None:
    return await Practice.get_or_none(id=practice_id)
