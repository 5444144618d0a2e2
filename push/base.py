"""The one interface every push provider implements, and the pieces the providers share.

Privacy rule (docs/api.md §5): a push carries no message text, no names, nothing that is health information.
Providers serialise exactly what they are given, so callers must only put ids and deep links in
`PushMessage.data` (e.g. ``{"conversation_id": "12", "link": "securemsg://conversations/12"}``) and only a
generic line in `title`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

ALERT_TYPES = ("appointment", "new_message", "appointment_request", "video_appointment")

# "badge" is the silent, badge-only update; every other type shows an alert.
PUSH_TYPES = ("new_message", "appointment_alert", "appointment_request", "video_appointment", "badge")

# The device alert flag (docs/api.md §3, PATCH /devices) that lets each push type through; badge updates
# are not alerts and always go.
ALERT_FLAG_FOR = {
    "new_message": "new_message",
    "appointment_alert": "appointment",
    "appointment_request": "appointment_request",
    "video_appointment": "video_appointment",
}

# Used only when a caller sends an alert push without a title: still generic, never content.
DEFAULT_TITLES = {
    "new_message": "New secure message",
    "appointment_alert": "Appointment reminder",
    "appointment_request": "New appointment request",
    "video_appointment": "Video appointment",
}


@dataclass(frozen=True)
class WebPushKeys:
    """A browser's Push API subscription keys (RFC 8291): the user agent's P-256 public key, uncompressed
    (65 bytes), and its 16-byte authentication secret. Only Web Push messages carry them."""

    p256dh: bytes = field(repr=False)
    auth: bytes = field(repr=False)


@dataclass(frozen=True)
class PushMessage:
    """One push to one device.

    `data` holds ids and a deep link only, never message text or names: providers copy it verbatim into
    the payload.
    """

    token: str  # device token
    # "new_message" | "appointment_alert" | "appointment_request" | "video_appointment" | "badge"
    push_type: str
    data: dict[str, str]  # ids and deep link only
    badge: int | None = None
    collapse_key: str | None = None  # e.g. "conversation-12"
    title: str | None = None  # generic line like "New secure message"; None for a silent badge update
    keys: WebPushKeys | None = None  # Web Push only: `token` is then the subscription's endpoint URL


@dataclass
class PushResult:
    """What happened to a batch, sorted the way the dispatcher acts on it."""

    delivered: list[str] = field(default_factory=list)  # tokens accepted
    dead_tokens: list[str] = field(default_factory=list)  # disable these devices at once, never retry
    retry_tokens: list[str] = field(default_factory=list)  # temporary failure: retry later with backoff
    retry_after: float | None = None  # seconds, when the provider said (429 Retry-After); else None
    failed: dict[str, str] = field(default_factory=dict)  # token -> reason; permanent, log once, no retry

    def add_retry(self, token: str, retry_after: float | None = None) -> None:
        self.retry_tokens.append(token)
        if retry_after is not None:
            # One batch, one pause: honour the longest wait any answer asked for.
            self.retry_after = retry_after if self.retry_after is None else max(self.retry_after, retry_after)


class PushProvider(Protocol):
    name: str  # "apns" | "fcm" | "webpush"

    async def send(self, batch: Sequence[PushMessage]) -> PushResult: ...

    async def close(self) -> None: ...


class Outcome(NamedTuple):
    """How one message fared, as a provider sorted it at the edge."""

    kind: Literal["delivered", "dead", "retry", "failed"]
    reason: str = ""
    retry_after: float | None = None


def collect(
    batch: Sequence[PushMessage], outcomes: Sequence[Outcome], log: logging.Logger, provider: str
) -> PushResult:
    """Fold per-message outcomes into a PushResult, logging each rejection once, here."""
    result = PushResult()
    for msg, outcome in zip(batch, outcomes, strict=True):
        token = msg.token
        if outcome.kind == "delivered":
            result.delivered.append(token)
        elif outcome.kind == "dead":
            result.dead_tokens.append(token)
            log.info("%s: device token %s is dead (%s)", provider, short_token(token), outcome.reason)
        elif outcome.kind == "retry":
            result.add_retry(token, outcome.retry_after)
            log.info("%s: will retry %s (%s)", provider, short_token(token), outcome.reason)
        else:
            result.failed[token] = outcome.reason
            log.warning("%s: push to %s failed for good (%s)", provider, short_token(token), outcome.reason)
    return result


def check_message(msg: PushMessage) -> str | None:
    """Why this message cannot be sent at all (a permanent failure), or None when it is well formed."""
    if msg.push_type not in PUSH_TYPES:
        return f"unknown push type {msg.push_type!r}"
    if not isinstance(msg.data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in msg.data.items()
    ):
        return "data must map strings to strings"
    if msg.push_type == "badge" and msg.badge is None:
        return "a badge push needs a badge count"
    badge = msg.badge
    if badge is not None and (isinstance(badge, bool) or not isinstance(badge, int) or badge < 0):
        return "badge must be a non-negative integer"
    return None


def alert_title(msg: PushMessage) -> str:
    return msg.title if msg.title else DEFAULT_TITLES.get(msg.push_type, "New notification")


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def short_token(token: str) -> str:
    """Enough of a device token to find it in the database, not enough to use it, for logs. A Web Push
    endpoint shows its push service's host and the last characters of its path."""
    if token.startswith("https://"):
        host, _, rest = token[len("https://") :].partition("/")
        return f"{host}/…{rest[-6:]}" if len(rest) > 6 else f"{host}/{rest}"
    return token[:8] + "…" if len(token) > 8 else token
