"""Id bounds: integer primary keys are 32-bit on PostgreSQL, so a larger id cannot name a row.

Checking before querying turns such an id into a plain 404 instead of a database error.
"""

MAX_ID = 2**31 - 1


def is_id(value: int) -> bool:
    """Could this number name a row (1 … MAX_ID)?"""
    return 0 < value <= MAX_ID


def id_from_text(raw: str) -> int | None:
    """The id that a path segment or query value names, or None when it cannot name a row."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if is_id(value) else None
