"""The in-process rate limiter: a sliding window per key, on the injected clock."""

from __future__ import annotations

from gateway.ratelimit import MemoryRateLimiter
from inbox.clock import FakeClock


async def test_allows_the_limit_then_says_how_long_to_wait():
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    assert [await limiter.check("k", 3, 60) for _ in range(3)] == [0, 0, 0]
    assert await limiter.check("k", 3, 60) == 60
    clock.advance(45)
    assert await limiter.check("k", 3, 60) == 15
    assert await limiter.check("other", 3, 60) == 0  # keys are independent


async def test_the_window_slides():
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    await limiter.check("k", 2, 10)
    clock.advance(6)
    await limiter.check("k", 2, 10)
    clock.advance(4)  # the first hit has left the window, the second has not
    assert await limiter.check("k", 2, 10) == 0
    assert await limiter.check("k", 2, 10) == 6  # until the hit at 6 s leaves the window


async def test_refused_tries_do_not_extend_the_wait():
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    await limiter.check("k", 1, 10)
    for _ in range(5):
        assert await limiter.check("k", 1, 10) > 0
    clock.advance(10)
    assert await limiter.check("k", 1, 10) == 0


async def test_idle_keys_are_forgotten():
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock, max_keys=10)
    for n in range(10):
        await limiter.check(f"k{n}", 1, 5)
    clock.advance(6)
    await limiter.check("fresh", 1, 5)
    assert len(limiter._hits) <= 11
    await limiter.check("fresh2", 1, 5)
    assert set(limiter._hits) == {"fresh", "fresh2"}
