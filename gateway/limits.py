"""Rate limits (per participant and per IP) on sign-in attempts, message sends and export requests.

Fixed windows: a counter per key per window of `window_s` seconds; over the limit → 429 with Retry-After
until the window ends. In one process by default; shared by every gateway process through Redis (INCR +
EXPIRE on one key per window) when `SECUREMSG_REDIS_URL` is set: a request's counters (per IP, per person)
in one round trip, one small Lua script that counts them in turn and stops at the first over its limit.
Every Redis call gives up after SECUREMSG_REDIS_TIMEOUT_S; when Redis does not answer, each process counts
on its own (the in-process counters, never no limit) and says so in the log, and Redis is asked again in
the background, so requests do not wait on a Redis that is down or hung: a Redis outage must not stop or
slow a practice's work.

Time comes from the injected clock, so tests move the clock rather than sleep.

Every limited action of the gateway goes through here: the API's sign-in, sends, export requests, the
portal's Instant Sign In requests and the client app's magic-link exchange.

The send limit is a flood guard against a runaway script or a stolen token, not a cap on how many messages
a person may send (R12): nobody types 60 messages a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from aiohttp import web

from gateway.client_address import client_address
from gateway.config import Config
from gateway.keys import CONFIG, CTX
from gateway.realtime import redis_scope
from inbox.clock import Clock
from inbox.errors import SlowDown

log = logging.getLogger(__name__)

# action -> {"ip" | "who": (limit, window_s)}
POLICIES: dict[str, dict[str, tuple[int, int]]] = {
    "login": {"ip": (30, 300), "who": (10, 300)},
    # A sign-in that shows a trusted device token (inbox.accounts.authenticate): counted per device token
    # instead of per account, so an attacker's failures on the account cannot hold up the person's device.
    "login_device": {"ip": (30, 300), "who": (10, 900)},
    "send": {"ip": (300, 60), "who": (60, 60)},
    "export": {"ip": (10, 3600), "who": (5, 3600)},
    # R18: Instant Sign In requests, per address tried (known or not, so a 429 reveals nothing) together with
    # the requesting client (so a stranger cannot spend a client's quota), and per IP.
    "signin_link": {"ip": (20, 3600), "who": (5, 3600)},
    # The client app exchanging a magic link for a bearer token: guessing links is hopeless, but cheap to cap.
    "magic": {"ip": (30, 300), "who": (30, 300)},
    # R25: changing one's password (guessing the current one from a stolen session) like sign-in, per
    # person; asking for a reset link like Instant Sign In, per address tried (known or not) and per IP.
    "password_change": {"ip": (30, 300), "who": (10, 300)},
    "password_reset": {"ip": (20, 3600), "who": (5, 3600)},
    # The portal's "Sign in with Google": each start stores an attempt, so a flood from one IP is capped.
    "oidc_start": {"ip": (30, 300), "who": (30, 300)},
}


class Limiter(Protocol):
    async def check(self, key: str, limit: int, window_s: int) -> None:
        """Count one hit on `key`; raise SlowDown (429, Retry-After) when over `limit` in this window."""

    async def check_all(self, hits: Sequence[tuple[str, int, int]]) -> None:
        """`check` each (key, limit, window_s) in turn; the first over its limit raises, and the keys after
        it are not counted."""

    async def close(self) -> None: ...


def _window(clock: Clock, window_s: int) -> tuple[int, int]:
    """(window number, seconds until it ends)."""
    now = clock.now().timestamp()
    number = int(now // window_s)
    return number, max(1, math.ceil((number + 1) * window_s - now))


class MemoryLimiter:
    """One process's counters. Ended windows are swept now and then, so memory follows the active keys."""

    SWEEP_AT = 10_000

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._counts: dict[str, tuple[int, int, float]] = {}  # key -> (window number, hits, window end)

    async def check(self, key: str, limit: int, window_s: int) -> None:
        number, left = _window(self.clock, window_s)
        window, hits, _ = self._counts.get(key, (number, 0, 0.0))
        hits = hits + 1 if window == number else 1
        self._counts[key] = (number, hits, (number + 1) * window_s)
        if len(self._counts) > self.SWEEP_AT:
            now = self.clock.now().timestamp()
            self._counts = {k: v for k, v in self._counts.items() if v[2] > now}
        if hits > limit:
            raise SlowDown(left)

    async def check_all(self, hits: Sequence[tuple[str, int, int]]) -> None:
        for key, limit, window_s in hits:
            await self.check(key, limit, window_s)

    async def close(self) -> None:
        self._counts.clear()


# KEYS: the counters; ARGV: each one's limit and time to live, in turn. Counts the keys in order, stops at the
# first over its limit and returns its position (1-based), else 0: one round trip for a request's counters,
# and the same counting as INCR then EXPIRE one key at a time.
COUNT_SCRIPT = """
for i, key in ipairs(KEYS) do
  local hits = redis.call('INCR', key)
  if hits == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
  if hits > tonumber(ARGV[2 * i - 1]) then return i end
end
return 0
"""


class RedisLimiter:
    """Counters shared by every process through Redis: one key per (key, window), INCR then EXPIRE.

    When Redis does not answer within `timeout_s`, the checks go to this process's own counters
    (`fallback`) for RETRY_S, after which a background ping decides whether Redis is back; no request
    waits on a Redis already known not to answer."""

    RETRY_S = 5.0

    def __init__(
        self, url: str, clock: Clock, prefix: str = "securemsg:rl:", *, timeout_s: float = 0.5
    ) -> None:
        import redis.asyncio as aioredis

        self.clock = clock
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._redis = aioredis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._count = self._redis.register_script(COUNT_SCRIPT)  # EVALSHA, loading the script when needed
        self.fallback = MemoryLimiter(clock)
        self._away_until: float | None = None  # monotonic time to ask Redis again; None: Redis answers
        self._probe: asyncio.Task[None] | None = None
        self._warned_at = -60.0

    async def check(self, key: str, limit: int, window_s: int) -> None:
        await self.check_all([(key, limit, window_s)])

    async def check_all(self, hits: Sequence[tuple[str, int, int]]) -> None:
        if self._away_until is not None:
            if time.monotonic() >= self._away_until and (self._probe is None or self._probe.done()):
                self._probe = asyncio.create_task(self._ask_again(), name="securemsg-limiter-probe")
            await self.fallback.check_all(hits)
            return
        keys: list[str] = []
        args: list[int] = []
        waits: list[int] = []
        for key, limit, window_s in hits:
            number, left = _window(self.clock, window_s)
            keys.append(f"{self.prefix}{key}:{window_s}:{number}")
            args += [limit, window_s + 5]
            waits.append(left)
        try:
            async with asyncio.timeout(2 * self.timeout_s):
                over = int(await self._count(keys=keys, args=args))
        except Exception as exc:
            self._away(exc)
            await self.fallback.check_all(hits)
            return
        if over:
            raise SlowDown(waits[over - 1])

    def _away(self, exc: BaseException) -> None:
        self._away_until = time.monotonic() + self.RETRY_S
        if time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            log.warning(
                "rate limiter: Redis does not answer (%s); counting in this process until it does",
                type(exc).__name__,
            )

    async def _ask_again(self) -> None:
        try:
            async with asyncio.timeout(2 * self.timeout_s):
                await self._redis.ping()
        except Exception as exc:
            self._away(exc)
        else:
            self._away_until = None
            log.info("rate limiter: Redis answers again; counting there")

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self.fallback.close()
        await self._redis.aclose()


LIMITER = web.AppKey("limiter", Limiter)
LIMIT_POLICIES = web.AppKey("limit_policies", dict[str, dict[str, tuple[int, int]]])


def policies_for(config: Config) -> dict[str, dict[str, tuple[int, int]]]:
    """POLICIES, with the send limit from the configuration (SECUREMSG_SEND_RATE_PER_MIN)."""
    if config.send_rate_per_min == POLICIES["send"]["who"][0]:
        return POLICIES
    per_min = config.send_rate_per_min
    return {**POLICIES, "send": {"ip": (5 * per_min, 60), "who": (per_min, 60)}}


async def limiter_part(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    limiter: Limiter
    if config.redis_url:
        # Deployments that share a Redis but not a database keep separate counters.
        scope = redis_scope(config.database_url)
        limiter = RedisLimiter(
            config.redis_url,
            app[CTX].clock,
            prefix=f"securemsg:rl:{scope}:",
            timeout_s=config.redis_timeout_s,
        )
    else:
        limiter = MemoryLimiter(app[CTX].clock)
    app[LIMITER] = limiter
    app[LIMIT_POLICIES] = policies_for(config)
    yield
    await limiter.close()


def client_ip(request: web.Request) -> str:
    """The client's address: the peer, or behind a trusted proxy the address it forwarded for."""
    return client_address(request)


async def retry_after(request: web.Request, action: str, who: str | int | None = None) -> int:
    """Like `enforce`, for pages that answer a 429 themselves: 0 when allowed, else seconds to wait."""
    try:
        await enforce(request, action, who)
    except SlowDown as exc:
        return exc.retry_after
    return 0


async def enforce(request: web.Request, action: str, who: str | int | None = None) -> None:
    """Count this request against the action's per-IP limit and, when `who` is given, its per-person one
    (a participant id, or for sign-in the address tried, kept only as a keyed hash)."""
    limiter = request.app.get(LIMITER)
    if limiter is None:
        return
    policy = request.app.get(LIMIT_POLICIES, POLICIES)[action]
    limit, window = policy["ip"]
    hits = [(f"{action}:ip:{client_ip(request)}", limit, window)]
    if who is not None:
        limit, window = policy["who"]
        secret = request.app[CTX].secret
        digest = hmac.new(secret, str(who).strip().lower().encode(), hashlib.sha256).hexdigest()[:24]
        hits.append((f"{action}:who:{digest}", limit, window))
    await limiter.check_all(hits)
