"""Two deployments on one Redis server (each with its own database) never hear each other's events: row
ids repeat across databases, so one shared pub/sub channel would hand one practice's message to a socket of
the other's. Every process of one deployment (same database) shares its channel (docs/scale-out.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import pytest

from gateway.realtime import CHANNEL, RedisHub, redis_scope
from tests.conftest import need, redis_url

pytestmark = pytest.mark.redis


class Heard(RedisHub):
    """A real RedisHub that also notes what reached it through Redis."""

    def __init__(self, url: str, database_url: str) -> None:
        super().__init__(url, channel=f"{CHANNEL}:{redis_scope(database_url)}")
        self.heard: list[tuple[list[int], dict[str, Any]]] = []

    def deliver_local(self, recipients: Iterable[int], payload: dict[str, Any]) -> None:
        recipients = list(recipients)
        self.heard.append((recipients, payload))
        super().deliver_local(recipients, payload)


async def test_r12_a_deployment_sharing_redis_never_gets_anothers_events() -> None:
    url = need("redis", redis_url())
    a1 = Heard(url, "postgres://db.example/practice_a")
    a2 = Heard(url, "postgres://db.example/practice_a")  # a second process of deployment A
    b = Heard(url, "postgres://db.example/practice_b")
    assert a1.channel == a2.channel != b.channel
    for hub in (a1, a2, b):
        await hub.start()
    try:
        event = {"type": "message.created", "conversation_id": 1, "message": {"body": "only for A"}}
        for _ in range(100):  # the listeners subscribe in the background: publish until A's other hears
            await a1.publish([2], event)
            await asyncio.sleep(0.05)
            if a2.heard:
                break
        assert a2.heard and a2.heard[0] == ([2], event)
        await asyncio.sleep(0.5)
        assert b.heard == []
    finally:
        for hub in (a1, a2, b):
            await hub.close()


async def test_a_burst_of_events_crosses_redis_in_order_in_fewer_messages() -> None:
    url = need("redis", redis_url())
    channel = f"{CHANNEL}:{redis_scope('postgres://db.example/burst-' + str(id(object())))}"

    class Counting(Heard):
        messages = 0

        def _received(self, raw: str | bytes) -> None:
            self.messages += 1
            super()._received(raw)

    sender, other = Heard(url, "unused"), Counting(url, "unused")
    sender.channel = other.channel = channel
    for hub in (sender, other):
        await hub.start()
    try:
        for _ in range(100):  # wait until the other's listener has subscribed
            await sender.publish([1], {"type": "ping"})
            await asyncio.sleep(0.05)
            if other.heard:
                break
        assert other.heard
        other.heard.clear()
        other.messages = 0
        for n in range(500):
            await sender.publish([2, 3], {"type": "unread", "n": n})

        def bursts() -> list[tuple[list[int], dict[str, Any]]]:  # a late "ping" may still come in
            return [h for h in other.heard if h[1]["type"] == "unread"]

        for _ in range(100):
            if len(bursts()) >= 500:
                break
            await asyncio.sleep(0.05)
        assert bursts() == [([2, 3], {"type": "unread", "n": n}) for n in range(500)]
        assert 1 <= other.messages < 500
    finally:
        for hub in (sender, other):
            await hub.close()


async def test_a_message_securemsg_did_not_write_is_skipped_without_reconnecting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Someone else's message on the channel (not JSON, not UTF-8, not our shape) is skipped with a log line;
    the listener stays subscribed (it used to reconnect, losing what crossed meanwhile)."""
    url = need("redis", redis_url())
    database_url = "postgres://db.example/junk-" + str(id(object()))
    a, b = Heard(url, database_url), Heard(url, database_url)
    for hub in (a, b):
        await hub.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.realtime"):
            for _ in range(100):  # the listeners subscribe in the background: publish until b hears
                await a.publish([2], {"type": "ready"})
                await asyncio.sleep(0.05)
                if b.heard:
                    break
            assert b.heard
            for junk in (b"\xff\xfe", b"not json", b'{"r": [2]}', b'[{"a": "x"}]', b"42"):
                await a._redis.publish(a.channel, junk)
            await a.publish([2], {"type": "after"})
            for _ in range(100):
                if b.heard[-1][1] == {"type": "after"}:
                    break
                await asyncio.sleep(0.05)
        assert b.heard[-1] == ([2], {"type": "after"})
        assert b.malformed == 5
        messages = [r.getMessage() for r in caplog.records]
        assert not any("reconnecting" in m for m in messages)
        assert sum("securemsg did not write" in m for m in messages) == 2  # one line per process
    finally:
        for hub in (a, b):
            await hub.close()
