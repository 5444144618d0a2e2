"""Rate limits: 429 with Retry-After on sign-in attempts, message sends and export requests, per participant
and per IP; in one process, and shared through a real Redis between two gateway apps."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.limits import LIMITER, POLICIES, MemoryLimiter, RedisLimiter
from inbox.errors import SlowDown
from tests.conftest import PASSWORD, Api, make_config, need, redis_url


@pytest.fixture
def config(sqlite_url: str, tmp_path: Path) -> Config:
    """The limiter keeps no state in the database: one database is enough here."""
    return make_config(sqlite_url, tmp_path / "var")


async def clinician_email(api, cast):
    status, body = await api.get("/team-members", token=cast.api_key)
    return next(m["email"] for m in body["items"] if m["id"] == cast.id("clinician"))


async def test_sign_in_attempts_are_limited_per_account(api, cast, clock):
    email = await clinician_email(api, cast)
    limit, window = POLICIES["login"]["who"]
    clock.advance(window - clock.now().timestamp() % window)  # start of a window
    for _ in range(limit):
        status, _ = await api.post("/auth/login", {"email": email, "password": PASSWORD})
        assert status == 200
    resp = await api.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) == window
    # Another address from the same IP is not held up by this account's limit.
    status, _ = await api.post("/auth/login", {"email": "someone@example.org", "password": "x" * 12})
    assert status == 401
    clock.advance(window)
    status, _ = await api.post("/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200


async def test_sign_in_attempts_are_limited_per_ip(api, cast, clock):
    limit, window = POLICIES["login"]["ip"]
    clock.advance(window - clock.now().timestamp() % window)
    clock.advance(10)
    for i in range(limit):
        status, _ = await api.post("/auth/login", {"email": f"guess{i}@example.org", "password": "x" * 12})
        assert status == 401
    resp = await api.client.post(
        "/api/v1/auth/login", json={"email": "guess-last@example.org", "password": "x" * 12}
    )
    assert resp.status == 429 and int(resp.headers["Retry-After"]) == window - 10


async def test_message_sends_are_limited_per_participant(api, cast, clock):
    limit, window = POLICIES["send"]["who"]
    clock.advance(window - clock.now().timestamp() % window)
    status, conv = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client")], "body": "first"},
        token=cast.tok("clinician"),
    )
    assert status == 201
    for i in range(limit - 1):
        status, body = await api.post(
            f"/conversations/{conv['id']}/messages", {"body": f"n{i}"}, token=cast.tok("clinician")
        )
        assert status == 201, body
    resp = await api.client.post(
        f"/api/v1/conversations/{conv['id']}/messages",
        json={"body": "one too many"},
        headers={"Authorization": f"Bearer {cast.tok('clinician')}"},
    )
    assert resp.status == 429 and 1 <= int(resp.headers["Retry-After"]) <= window
    # Someone else in the same conversation still writes; the clinician again after the window.
    status, _ = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": "hi"}, token=cast.tok("client")
    )
    assert status == 201
    clock.advance(window)
    status, _ = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": "later"}, token=cast.tok("clinician")
    )
    assert status == 201


async def test_export_requests_are_limited(api, cast, clock):
    limit, window = POLICIES["export"]["who"]
    for _ in range(limit):
        status, _ = await api.post("/exports", {"scope": "all"}, token=cast.tok("owner"))
        assert status == 202
    status, body = await api.post("/exports", {"scope": "all"}, token=cast.tok("owner"))
    assert status == 429 and body["error"]["code"] == "rate_limited"
    clock.advance(window)
    status, _ = await api.post("/exports", {"scope": "all"}, token=cast.tok("owner"))
    assert status == 202


async def test_memory_limiter_forgets_ended_windows(clock):
    limiter = MemoryLimiter(clock)
    limiter.SWEEP_AT = 10
    for i in range(10):
        await limiter.check(f"k{i}", 5, 60)
    clock.advance(120)
    await limiter.check("fresh", 5, 60)
    assert len(limiter._counts) == 1


# --- shared through Redis ------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_limiter_counts_across_instances(clock):
    url = need("redis", redis_url())
    prefix = f"securemsg:test:{uuid.uuid4().hex}:"
    a, b = RedisLimiter(url, clock, prefix), RedisLimiter(url, clock, prefix)
    try:
        await a.check("k", 3, 60)
        await b.check("k", 3, 60)
        await a.check("k", 3, 60)
        with pytest.raises(SlowDown) as caught:
            await b.check("k", 3, 60)
        assert 1 <= caught.value.retry_after <= 60
        clock.advance(60)
        await b.check("k", 3, 60)  # a new window
    finally:
        await a.close()
        await b.close()


async def test_redis_limiter_counts_in_the_process_when_redis_is_down(clock):
    limiter = RedisLimiter("redis://127.0.0.1:1/0", clock)
    try:
        await limiter.check("k", 2, 60)
        await limiter.check("k", 2, 60)
        # Never "no limit": this process's own counters hold while Redis does not answer.
        with pytest.raises(SlowDown):
            await limiter.check("k", 2, 60)
        await limiter.check("other", 2, 60)
    finally:
        await limiter.close()


@pytest.mark.redis
async def test_two_gateways_share_sign_in_limits_through_redis(aiohttp_client, config, clock):
    from gateway.app import create_app
    from tests.conftest import build_cast

    url = need("redis", redis_url())
    # Each test's database URL is new, and the Redis keys are scoped by it: no other run shares these.
    shared = config.with_overrides(redis_url=url)
    one = Api(await aiohttp_client(create_app(shared, clock=clock)))
    two = Api(await aiohttp_client(create_app(shared, clock=clock)))
    assert isinstance(one.client.server.app[LIMITER], RedisLimiter)
    cast = await build_cast(one, shared, clock)
    email = await clinician_email(one, cast)
    limit, window = POLICIES["login"]["who"]
    clock.advance(window - clock.now().timestamp() % window)
    for i in range(limit):
        status, _ = await (one if i % 2 else two).post("/auth/login", {"email": email, "password": PASSWORD})
        assert status == 200
    for gateway in (one, two):
        status, body = await gateway.post("/auth/login", {"email": email, "password": PASSWORD})
        assert status == 429, body


async def _counts_in_turn_and_stops_at_the_first_over(limiter, clock) -> None:  # type: ignore[no-untyped-def]
    clock.advance(3600 - clock.now().timestamp() % 3600)  # the start of a window of each length
    await limiter.check_all([("ip", 2, 60), ("who", 5, 3600)])
    await limiter.check_all([("ip", 2, 60), ("who", 5, 3600)])
    clock.advance(10)
    with pytest.raises(SlowDown) as caught:  # the per-IP counter is over: "who" is not counted
        await limiter.check_all([("ip", 2, 60), ("who", 5, 3600)])
    assert caught.value.retry_after == 50  # the per-IP window's own end
    for _ in range(3):  # "who" has 2 hits: three more reach its limit of 5
        await limiter.check_all([("other-ip", 100, 60), ("who", 5, 3600)])
    with pytest.raises(SlowDown) as caught:
        await limiter.check_all([("other-ip", 100, 60), ("who", 5, 3600)])
    assert caught.value.retry_after == 3590


async def test_memory_limiter_counts_a_requests_keys_in_turn(clock):
    await _counts_in_turn_and_stops_at_the_first_over(MemoryLimiter(clock), clock)


@pytest.mark.redis
async def test_redis_limiter_counts_a_requests_keys_in_turn_in_one_round_trip(clock):
    url = need("redis", redis_url())
    import redis.asyncio as aioredis

    prefix = f"securemsg:test:{uuid.uuid4().hex}:"
    limiter, other = RedisLimiter(url, clock, prefix), RedisLimiter(url, clock, prefix)
    reader = aioredis.from_url(url)
    try:
        await _counts_in_turn_and_stops_at_the_first_over(limiter, clock)
        with pytest.raises(SlowDown):  # the counts are in Redis: another process sees "who" over its limit
            await other.check_all([("a-third-ip", 100, 60), ("who", 5, 3600)])
        keys = await reader.keys(prefix + "*")
        assert len(keys) == 4  # ip, other-ip, a-third-ip, who
        ttls = sorted([await reader.ttl(k) for k in keys])
        assert 0 < ttls[0] <= 65 and 3600 < ttls[-1] <= 3605  # each key ends with its window (and 5 s)
    finally:
        await limiter.close()
        await other.close()
        await reader.aclose()
