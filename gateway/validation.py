"""Reading request bodies and query strings into checked values, with API.md's 4xx errors."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from inbox.errors import Invalid, TooLarge

MAX_BODY_BYTES = 256 * 1024

_NAMES = {str: "a string", bool: "true or false", int: "a whole number", list: "a list", dict: "an object"}


async def read_json(request: web.Request, allowed: set[str] | None = None) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise TooLarge("request_too_large", f"A request body holds at most {MAX_BODY_BYTES // 1024} KiB.")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise TooLarge("request_too_large", f"A request body holds at most {MAX_BODY_BYTES // 1024} KiB.")
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise Invalid("invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise Invalid("invalid_json", "The request body must be a JSON object.")
    if allowed is not None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise Invalid("unknown_field", f"Unknown field: {unknown[0]}.", field=unknown[0])
    return data


def _type_ok(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def take(
    data: dict[str, Any],
    name: str,
    kind: type,
    *,
    required: bool = False,
    nullable: bool = False,
    item: type | None = None,
    max_items: int = 500,
) -> Any:
    if name not in data:
        if required:
            raise Invalid("missing_field", f"{name} is required.", field=name)
        return None
    value = data[name]
    if value is None:
        if nullable:
            return None
        raise Invalid("invalid_field", f"{name} must be {_NAMES.get(kind, kind.__name__)}.", field=name)
    if not _type_ok(value, kind):
        raise Invalid("invalid_field", f"{name} must be {_NAMES.get(kind, kind.__name__)}.", field=name)
    if kind is list:
        if len(value) > max_items:
            raise TooLarge("too_many_items", f"{name} holds at most {max_items} items.", field=name)
        if item is not None and not all(_type_ok(v, item) for v in value):
            raise Invalid(
                "invalid_field", f"{name} must be a list of {_NAMES.get(item, item.__name__)}s.", field=name
            )
    if kind is int and not -(2**62) < value < 2**62:
        raise Invalid("invalid_field", f"{name} is out of range.", field=name)
    return value


def present(data: dict[str, Any], spec: dict[str, tuple[type, bool]]) -> dict[str, Any]:
    """The fields of `spec` (name -> (type, nullable)) that the body holds, checked."""
    return {
        name: take(data, name, kind, nullable=nullable)
        for name, (kind, nullable) in spec.items()
        if name in data
    }


def path_int(request: web.Request, name: str, *, big: bool = False) -> int:
    """An id from the path; one that cannot name a row (not digits, or past the column's range) is a 404."""
    from inbox.errors import NotFound
    from inbox.ids import MAX_ID

    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18 or (not big and int(raw) > MAX_ID):
        raise NotFound()
    return int(raw)


def query_int(
    request: web.Request, name: str, *, default: int | None = None, lo: int = 0, hi: int = 2**62
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise Invalid("invalid_query", f"{name} must be a whole number from {lo} to {hi}.", field=name)
    return int(raw)
