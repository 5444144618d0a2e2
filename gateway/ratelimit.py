"""Rate limits: `await limiter.check(key, limit, window_s)` → 0 when allowed (and counted), else the seconds
to wait before the next try (the `Retry-After`).

The interface is one method so that a shared store can back it when several gateways run (another part
will put Redis behind it); this in-process one is enough for one process. It keeps a sliding log of hit times
per key from the injected clock, so tests move the clock instead of sleeping.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from inbox.clock import Clock


class RateLimiter(Protocol):
    async def check(self, key: str, limit: int, window_s: float) -> float: ...


class MemoryRateLimiter:
    """At most `limit` hits per key in any `window_s`-second window, in this process."""

    def __init__(self, clock: Clock, *, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._hits: dict[str, tuple[float, deque[float]]] = {}
        self._max_keys = max_keys

    async def check(self, key: str, limit: int, window_s: float) -> float:
        now = self._clock.now().timestamp()
        _, hits = self._hits.setdefault(key, (window_s, deque()))
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        if len(hits) >= limit:
            return max(1.0, float(math.ceil(hits[0] + window_s - now)))
        hits.append(now)
        if len(self._hits) > self._max_keys:
            self._sweep(now)
        return 0.0

    def _sweep(self, now: float) -> None:
        """Forget keys with no hit inside their window, so memory stays bounded by the active keys."""
        for key, (window_s, hits) in list(self._hits.items()):
            if not hits or hits[-1] <= now - window_s:
                del self._hits[key]
