"""Publishing to Redis after the answer: `RedisHub.publish` only queues the event, and a full queue (Redis
slow or away for long) drops it with a log line and a count instead of holding the request or growing.
What is queued goes as few relay messages as fit (`pack`)."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.realtime import RedisHub, pack


async def test_a_full_publish_queue_drops_with_a_log_line_and_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = RedisHub("redis://127.0.0.1:1/0", timeout_s=0.1, queue_limit=2)  # publisher not started
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.realtime"):
            for n in range(5):  # the publisher is not started: nothing takes from the queue
                await hub.publish([1], {"type": "message.created", "n": n})
        assert hub.dropped_publish == 3
        assert [r.getMessage() for r in caplog.records if "queue of events" in r.getMessage()] == [
            "realtime: the queue of events for Redis is full; event dropped (1 so far); clients catch up "
            "through the API"
        ]  # one line for the outage, not one per event
    finally:
        await hub.close()


def test_pack_joins_items_in_order_into_messages_within_the_limit() -> None:
    items = [json.dumps({"r": [n], "p": {"n": n}}, separators=(",", ":")) for n in range(50)]
    messages = pack(items, 200)
    assert len(messages) > 1
    assert all(len(m) <= 200 for m in messages)
    assert [item for m in messages for item in json.loads(m)] == [json.loads(i) for i in items]
    assert pack(items[:3], 10_000) == ["[" + ",".join(items[:3]) + "]"]  # all in one when they fit
    big = json.dumps({"r": [1], "p": {"body": "x" * 300}})
    assert pack([items[0], big, items[1]], 200) == [f"[{items[0]}]", f"[{big}]", f"[{items[1]}]"]
    assert pack([], 200) == []
