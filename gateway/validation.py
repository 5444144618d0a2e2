"""Reading request bodies and query strings into checked values, with docs/api.md's 4xx errors."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from inbox.errors import Invalid, NotFound, TooLarge
from inbox.ids import MAX_BIG_ID, id_from_text

MAX_BODY_BYTES = 256 * 1024


async def read_raw(request: web.Request) -> bytes:
    """The request body's bytes, at most MAX_BODY_BYTES of them (else 413)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise TooLarge("request_too_large", f"A request body holds at most {MAX_BODY_BYTES // 1024} KiB.")
    # `read(n)` answers with what has arrived so far (up to n bytes), not with n bytes: a body that comes
    # in pieces (chunked, or over a slow link) is read piece by piece until it ends or passes the limit.
    parts: list[bytes] = []
    size = 0
    while part := await request.content.read(MAX_BODY_BYTES + 1 - size):
        parts.append(part)
        size += len(part)
        if size > MAX_BODY_BYTES:
            raise TooLarge("request_too_large", f"A request body holds at most {MAX_BODY_BYTES // 1024} KiB.")
    return b"".join(parts)


def parse_json(raw: bytes) -> dict[str, Any]:
    """A JSON object (an empty body reads as `{}`) whose every string is text: else 422."""
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise Invalid("invalid_json", "The request body is not valid JSON.") from None
        except RecursionError:  # `[` a hundred thousand times: the parser gives up before we would
            raise _too_deep() from None
    if not isinstance(data, dict):
        raise Invalid("invalid_json", "The request body must be a JSON object.")
    for key, value in data.items():
        # A key with a lone surrogate is named in the error with it escaped, so the answer can be encoded.
        check_text(key.encode("utf-8", "backslashreplace").decode(), key, value)
    return data


# No request of this API nests deeper than a list of objects in an object; a generous bound, so that no
# later code (a recursive walk, the database driver's JSON encoder) meets a structure deep enough to fail.
MAX_DEPTH = 32


def _too_deep() -> Invalid:
    return Invalid("invalid_json", f"The request body nests deeper than {MAX_DEPTH} levels.")


def check_text(field: str, *values: Any) -> None:
    """Every string in the values (and every key of their objects), without recursion: no NUL (PostgreSQL
    cannot store it) and no lone surrogate. JSON may spell one ("\\ud800"), but it is no character: it
    cannot be encoded as UTF-8, so the database, a template or the answer would fail on it later."""
    stack = [(v, 1) for v in values]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        if isinstance(value, str):
            if "\x00" in value:
                raise_nul(field)
            if not _encodable(value):
                raise Invalid(
                    "invalid_character",
                    f"{field} holds a lone surrogate (\\ud800–\\udfff), which is not a character.",
                    field=field,
                )
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, dict):
            stack.extend((k, depth + 1) for k in value)
            stack.extend((v, depth + 1) for v in value.values())


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def raise_nul(field: str) -> None:
    """PostgreSQL cannot store U+0000 in text, and no person types it: refused wherever text comes in."""
    raise Invalid("invalid_character", f"{field} must not contain the NUL character (U+0000).", field=field)


def path_int(request: web.Request, name: str, *, big: bool = False) -> int:
    """An id from the path; one that cannot name a row (not digits, 0, past the column's range) is a 404."""
    value = id_from_text(request.match_info[name], big=big)
    if value is None:
        raise NotFound()
    return value


def query_int(
    request: web.Request, name: str, *, default: int | None = None, lo: int = 0, hi: int = MAX_BIG_ID
) -> int | None:
    """A whole number from the query string (by default up to the largest 64-bit id), else 422."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not lo <= int(raw) <= hi:
        raise Invalid("invalid_query", f"{name} must be a whole number from {lo} to {hi}.", field=name)
    return int(raw)
