"""Id bounds: integer primary keys are 32-bit on PostgreSQL (messages, audit rows and webhook deliveries are
64-bit), so a larger id cannot name a row.

Checking before querying turns such an id into a plain 404 (or 422 for a cursor) instead of a database error.
"""

MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1  # the 64-bit id columns: Message, WebhookDelivery, AuditEvent, OutboxJob


def is_id(value: int, *, big: bool = False) -> bool:
    """Could this number name a row (1 … MAX_ID, or MAX_BIG_ID for a 64-bit id column)?"""
    return 0 < value <= (MAX_BIG_ID if big else MAX_ID)


def id_from_text(raw: str, *, big: bool = False) -> int | None:
    """The id that a path segment or query value names, or None when it cannot name a row."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    value = int(raw)
    return value if is_id(value, big=big) else None
