"""`PgHub`: realtime events between the processes of `serve --processes N` through PostgreSQL LISTEN/NOTIFY,
when there is no Redis. Two hubs on two connections to one real PostgreSQL database stand for two processes;
each serves real websockets from its own aiohttp server."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway import realtime
from gateway.realtime import NOTIFY_LIMIT, PgHub
from tests.conftest import _pg_exec, _with_db, need, postgres_url

pytestmark = pytest.mark.postgres

ENDED: set[int] = set()  # token ids whose access has ended, for the hubs' re-check


async def check(token_ids: Collection[int]) -> dict[int, str]:
    return {t: "signed_out" for t in token_ids if t in ENDED}


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = need("postgres", postgres_url())
    name = f"securemsg_pghub_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_exec(base, f'CREATE DATABASE "{name}"'))
    yield _with_db(base, name)
    asyncio.run(_pg_exec(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Process:
    """One hub and an aiohttp server whose /ws?p=participant&t=token subscribes to it."""

    def __init__(self, hub: PgHub, client: Any) -> None:
        self.hub = hub
        self.client = client

    async def socket(self, participant: int, token: int = 0) -> aiohttp.ClientWebSocketResponse:
        ws = await self.client.ws_connect(f"/ws?p={participant}&t={token}")
        assert await ws.receive_str(timeout=5) == "subscribed"
        return ws


async def start(url: str, aiohttp_client: Any) -> Process:
    hub = PgHub(url, check, timeout_s=5)
    await hub.start()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sub = hub.subscribe(int(request.query["p"]), ws, request.transport, int(request.query["t"]))
        await ws.send_str("subscribed")
        try:
            async for _ in ws:
                pass
        finally:
            await hub.unsubscribe(sub)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return Process(hub, await aiohttp_client(app))


@pytest.fixture
async def two(pg_url: str, aiohttp_client: Any) -> AsyncIterator[tuple[Process, Process]]:
    a, b = await start(pg_url, aiohttp_client), await start(pg_url, aiohttp_client)
    yield a, b
    await a.hub.close()
    await b.hub.close()


async def next_json(ws: aiohttp.ClientWebSocketResponse, within_s: float = 5) -> Any:
    return await ws.receive_json(timeout=within_s)


async def test_an_event_published_in_one_process_reaches_sockets_in_both(
    two: tuple[Process, Process],
) -> None:
    a, b = two
    on_a, on_b, other = await a.socket(7), await b.socket(7), await b.socket(8)
    for n in range(5):
        await a.hub.publish([7], {"type": "message.created", "n": n})
    assert [(await next_json(on_a))["n"] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert [(await next_json(on_b))["n"] for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(asyncio.TimeoutError):
        await other.receive(timeout=0.3)  # participant 8 was not a recipient


async def test_an_event_too_large_for_a_notification_stays_in_its_process_with_a_log_line(
    two: tuple[Process, Process], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = two
    on_a, on_b = await a.socket(7), await b.socket(7)
    big = {"type": "message.created", "body": "x" * NOTIFY_LIMIT}
    with caplog.at_level(logging.WARNING, logger="gateway.realtime"):
        await a.hub.publish([7], big)
        await a.hub.publish([7], big)
    assert (await next_json(on_a))["body"] == big["body"]  # this process's sockets still get it
    assert (await next_json(on_a))["body"] == big["body"]
    await a.hub.publish([7], {"type": "message.created", "n": 1})
    assert await next_json(on_b) == {"type": "message.created", "n": 1}  # the big ones never came here
    assert a.hub.too_large == 2
    lines = [r.getMessage() for r in caplog.records if "does not fit" in r.getMessage()]
    assert len(lines) == 1  # one line, not one per event
    assert "only this process's sockets get it" in lines[0]


async def test_r27_an_access_change_in_one_process_closes_the_socket_in_the_other(
    two: tuple[Process, Process], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No periodic re-check during this test: only the notice can close the socket in time.
    monkeypatch.setattr(realtime, "RECHECK_EVERY_S", 60.0)
    a, b = two
    keeps, ends = await b.socket(7, token=70), await b.socket(7, token=71)
    ENDED.add(71)
    try:
        started = time.monotonic()
        await a.hub.access_changed([7])
        msg = await ends.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == realtime.ACCESS_ENDED
        assert msg.extra == "signed_out"
        assert time.monotonic() - started < 2.0
        await a.hub.publish([7], {"type": "message.created", "n": 2})
        assert await next_json(keeps) == {"type": "message.created", "n": 2}  # its token still gives access
    finally:
        ENDED.discard(71)


async def test_events_flow_again_after_the_listen_connection_is_cut(
    two: tuple[Process, Process], pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = two
    on_b = await b.socket(7)
    assert b.hub._conn is not None
    backend = b.hub._conn.get_server_pid()
    with caplog.at_level(logging.WARNING, logger="gateway.realtime"):
        await _pg_exec(pg_url, f"SELECT pg_terminate_backend({backend})")
        deadline = time.monotonic() + 10
        while b.hub._conn is None or b.hub._conn.get_server_pid() == backend:
            assert time.monotonic() < deadline, "the hub did not reconnect"
            await asyncio.sleep(0.05)
    assert any("LISTEN connection to PostgreSQL was lost" in r.getMessage() for r in caplog.records)
    await a.hub.publish([7], {"type": "message.created", "n": 3})
    assert await next_json(on_b) == {"type": "message.created", "n": 3}


JUNK = ("not json", "[1, 2]", '{"r": "7", "p": {}}', '[{"r": [7], "p": "frame"}]', '{"a": [true]}', "null")


async def test_a_notification_securemsg_did_not_write_is_skipped_and_the_listener_goes_on(
    two: tuple[Process, Process], pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone else's NOTIFY on the channel: skipped with one log line, and the events after it still arrive."""
    a, b = two
    on_b = await b.socket(7)
    with caplog.at_level(logging.WARNING, logger="gateway.realtime"):
        for junk in JUNK:
            await _pg_exec(pg_url, f"SELECT pg_notify('{realtime.PG_CHANNEL}', '{junk}')")
        await a.hub.publish([7], {"type": "message.created", "n": 1})
        assert await next_json(on_b) == {"type": "message.created", "n": 1}
    assert b.hub.malformed == a.hub.malformed == len(JUNK)
    warned = [r for r in caplog.records if "securemsg did not write" in r.getMessage()]
    assert len(warned) == 2  # once for each process, not once per message


class Counting(PgHub):
    """A real PgHub that counts the notifications that reach it."""

    notifications = 0

    def _received(self, raw: str | bytes) -> None:
        self.notifications += 1
        super()._received(raw)


async def test_a_burst_of_events_goes_as_few_notifications_in_order(pg_url: str, aiohttp_client: Any) -> None:
    a = await start(pg_url, aiohttp_client)
    b = Process(Counting(pg_url, check, timeout_s=5), None)
    await b.hub.start()
    try:
        on_b = []
        b.hub.deliver_local = lambda r, p: on_b.append((list(r), p))  # type: ignore[method-assign]
        for n in range(300):  # about 60 bytes each: more than one notification's worth
            await a.hub.publish([7, 8], {"type": "unread", "n": n})
        for _ in range(250):
            if len(on_b) >= 300:
                break
            await asyncio.sleep(0.02)
        assert on_b == [([7, 8], {"type": "unread", "n": n}) for n in range(300)]
        assert 2 <= b.hub.notifications < 300  # packed, each within NOTIFY_LIMIT
    finally:
        await a.hub.close()
        await b.hub.close()
