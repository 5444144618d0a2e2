"""Reading the audit log with filters (R24): the owner's Settings > Audit log page and GET /audit.

Separate from inbox.audit, which writes and verifies the chain: this only reads. Without filters the answer
is what GET /audit always gave (oldest first, paged by seq); `newest` pages the other way, for the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inbox.audit import event_json, parse_since
from inbox.errors import Invalid
from inbox.store import audit as store

MAX_ACTION = 48  # the column's width


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    actor_id: int | None = None
    action: str | None = None  # exact, or every action of a family with a trailing "." ("export.")
    newest: bool = False


def parse_until(raw: str | None) -> datetime | None:
    try:
        return parse_since(raw)
    except Invalid:
        raise Invalid(
            "invalid_until", "until must be a date or time such as 2026-01-06T00:00:00Z.", field="until"
        ) from None


def parse_action(raw: str | None) -> str | None:
    if not raw:
        return None
    value = raw.strip()
    if len(value) > MAX_ACTION or not all(c.isalnum() or c in "._-" for c in value):
        raise Invalid(
            "invalid_action",
            'action is an audit action such as "client.update" or "export.".',
            field="action",
        )
    return value or None


def parse_order(raw: str | None) -> bool:
    if raw in (None, "", "oldest"):
        return False
    if raw == "newest":
        return True
    raise Invalid("invalid_order", 'order is "oldest" or "newest".', field="order")


async def list_events(practice_id: int, f: AuditFilter, cursor: int, limit: int = 100) -> dict[str, Any]:
    # Only sealed rows (in the chain, with their seq): the caller seals what has committed first.
    rows = await store.list_filtered_events(
        practice_id,
        cursor,
        newest=f.newest,
        since=f.since,
        until=f.until,
        actor_id=f.actor_id,
        action=f.action,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [event_json(r) for r in rows],
        "next_cursor": str(rows[-1].seq) if more and rows else None,
    }


async def actions(practice_id: int) -> list[str]:
    """The actions this practice's log holds, for the page's filter."""
    return await store.list_actions(practice_id)
