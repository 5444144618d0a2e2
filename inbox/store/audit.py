"""The audit log (`audit_event`, R24): the shape of a send's row, which the send path writes with its own
prepared SQL (`inbox.store.messages`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple


class SendRow(NamedTuple):
    """A send's audit row as plain values, in the send path's column order: building a model instance would
    cost the hot path more than the insert. `inbox.audit.send_row` fills it in (with its mac)."""

    practice_id: int
    at: datetime
    actor_id: int
    actor_kind: str
    action: str
    target_type: str
    detail: dict[str, Any]
    ip: str | None
    mac: str
    key_id: str
