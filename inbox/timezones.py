"""The practice's time zone: chart notes, transcripts and exports write times in it, and say which.

A practice starts without one (`Practice.time_zone` is null, and UTC applies) until an owner or manager
chooses it in Settings, or their browser's zone is taken the first time one of them opens a page: null,
not "UTC", is what tells "not chosen yet" from "chosen: UTC", so a practice that chose UTC keeps it.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from inbox.errors import DomainError

DEFAULT_ZONE = "UTC"
# Names in the tz database that are not places: the server's own zone, and files of the database itself.
_NOT_A_PLACE = frozenset({"localtime", "posixrules", "Factory"})
_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")


@lru_cache(maxsize=1)
def known_zones() -> tuple[str, ...]:
    """Every zone a practice may choose, sorted: the tz database's names, as a browser's Intl gives them."""
    return tuple(sorted(z for z in available_timezones() if z not in _NOT_A_PLACE and _SHAPE.fullmatch(z)))


def check_time_zone(value: str) -> str:
    """An IANA zone name ("America/New_York", "UTC"), else 400 invalid_field."""
    name = value if isinstance(value, str) else ""
    if len(name) > 64 or name not in known_zones():
        raise DomainError(  # a 400: the name is not one of the tz database's
            "invalid_field",
            'time_zone must be a time zone name such as "America/New_York" or "UTC".',
            field="time_zone",
        )
    return name


def zone_name(stored: str | None) -> str:
    return stored or DEFAULT_ZONE


def zone(stored: str | None) -> ZoneInfo:
    """The practice's zone; a stored name the tz database no longer has falls back to UTC."""
    try:
        return ZoneInfo(zone_name(stored))
    except (ValueError, KeyError):
        return ZoneInfo(DEFAULT_ZONE)


def stamp(at: datetime, tz: ZoneInfo) -> str:
    """Minutes in the practice's zone with its abbreviation: "2026-01-05 14:05 EST" (an abbreviation
    changes with daylight saving time, so each time carries its own)."""
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
