"""This database's own random id (`installation`: one row)."""

from __future__ import annotations

from datetime import datetime

from inbox.models import Installation


async def get_installation_or_none(row_id: int) -> Installation | None:
    return await Installation.get_or_none(id=row_id)


async def get_installation(row_id: int) -> Installation:
    """The row (DoesNotExist when there is none)."""
    return await Installation.get(id=row_id)


async def add_installation(row_id: int, uid: str, created_at: datetime) -> Installation:
    """The row; IntegrityError when another process wrote it first."""
    return await Installation.create(id=row_id, uid=uid, created_at=created_at)
