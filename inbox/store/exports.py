"""Data exports (`export`, R21–R23)."""

from __future__ import annotations

from inbox.models import Export


async def get_export(export_id: int) -> Export | None:
    return await Export.get_or_none(id=export_id)
