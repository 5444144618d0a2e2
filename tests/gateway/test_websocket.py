"""The websocket (docs/api.md §4): events reach the participants of a conversation, and only them."""

from __future__ import annotations

import asyncio
import json

from gateway.keys import HUB


async def connect(client, token):
    ws = await client.ws_connect("/api/v1/ws", headers={"Authorization": f"Bearer {token}"})
    first = await ws.receive_json(timeout=5)
    assert first["type"] == "unread"
    return ws


async def next_of(ws, kind, within=5.0):
    while True:
        event = await ws.receive_json(timeout=within)
        if event["type"] == kind:
            return event


async def nothing_more(ws, wait=0.3):
    try:
        msg = await ws.receive(timeout=wait)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected frame {msg.data!r}")


async def test_message_created_reaches_participants_only(client, api, cast):
    colleague = await connect(client, cast.tok("clinician2"))
    outsider = await connect(client, cast.tok("biller"))
    _, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician2")]}, token=cast.tok("clinician")
    )
    status, sent = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": "Lunch at noon?"}, token=cast.tok("clinician")
    )
    assert status == 201
    event = await next_of(colleague, "message.created")
    assert event["conversation_id"] == conv["id"]
    assert event["message"]["body"] == "Lunch at noon?"
    unread = await next_of(colleague, "unread")
    assert unread["unread_total"] == 1
    assert await nothing_more(outsider)

    await api.post(
        f"/conversations/{conv['id']}/read",
        {"up_to_message_id": sent["message"]["id"]},
        token=cast.tok("clinician2"),
    )
    read = await next_of(colleague, "conversation.read")
    assert read == {
        "type": "conversation.read",
        "conversation_id": conv["id"],
        "participant_id": cast.id("clinician2"),
        "up_to_message_id": sent["message"]["id"],
    }
    assert (await next_of(colleague, "unread"))["unread_total"] == 0

    await api.delete(f"/messages/{sent['message']['id']}", token=cast.tok("clinician"))
    removed = await next_of(colleague, "message.removed")
    assert removed["message_id"] == sent["message"]["id"]
    await colleague.close()
    await outsider.close()


async def test_away_event_reaches_the_client(client, api, cast):
    await api.post(
        "/conversations", {"participant_ids": [cast.id("client")], "body": "hi"}, token=cast.tok("clinician")
    )
    ws = await connect(client, cast.tok("client"))
    await api.put("/me/away", {"enabled": True, "message": "Back Monday"}, token=cast.tok("clinician"))
    event = await next_of(ws, "away")
    assert event == {
        "type": "away",
        "participant_id": cast.id("clinician"),
        "enabled": True,
        "text": "Back Monday",
    }
    await ws.close()


async def test_websocket_needs_a_valid_token(client):
    resp = await client.get("/api/v1/ws", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_token"


async def test_a_socket_that_stops_reading_does_not_stall_others(client, cast):
    """A steady stream to a reader and a non-reader: the reader gets all, the non-reader is cut off."""
    hub = client.server.app[HUB]
    stalled = await connect(client, cast.tok("clinician2"))  # never reads again
    reader = await connect(client, cast.tok("biller"))
    pid_stalled, pid_reader = cast.id("clinician2"), cast.id("biller")
    blob = "x" * 64_000
    received = 0

    async def read_all():
        nonlocal received
        while received < 800:
            msg = await reader.receive(timeout=20)
            data = json.loads(msg.data)
            if data.get("type") == "blob":
                received += 1

    reading = asyncio.create_task(read_all())
    for i in range(800):
        # Publishing never waits on a socket, so this loop does not block on the stalled one.
        hub.deliver_local([pid_stalled, pid_reader], {"type": "blob", "n": i, "pad": blob})
        await asyncio.sleep(0.002)  # a steady stream, which a reading client keeps up with
    await asyncio.wait_for(reading, timeout=30)
    assert received == 800
    assert hub.dropped_slow >= 1
    # The stalled socket was closed by the server rather than buffered without bound.
    closed = False
    for _ in range(2000):
        msg = await stalled.receive(timeout=10)
        if msg.type.name in ("CLOSE", "CLOSED", "CLOSING", "ERROR"):
            closed = True
            break
    assert closed
    await reader.close()
    await stalled.close()


async def test_shutdown_closes_open_sockets_at_once(client, cast):
    """An open socket must not hold a graceful shutdown (Ctrl+C, a deploy) for its whole timeout."""
    import time

    from aiohttp import WSMsgType

    ws = await connect(client, cast.tok("clinician"))
    started = time.monotonic()
    await asyncio.wait_for(client.server.close(), timeout=10)
    assert time.monotonic() - started < 5
    msg = await ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


async def test_a_socket_too_far_behind_in_bytes_is_dropped_from_the_hub_at_once(client, cast):
    """Few but large frames: the byte cap, not the frame count, cuts the socket off; its queue goes with it."""
    from gateway.realtime import QUEUE_BYTES, QUEUE_LIMIT

    hub = client.server.app[HUB]
    stalled = await connect(client, cast.tok("clinician2"))  # never reads again
    pid = cast.id("clinician2")
    [sub] = hub._subs[pid]
    frame_pad = "y" * (QUEUE_BYTES // 8)
    sent = 0
    while hub.connected() and sent < QUEUE_LIMIT:
        hub.deliver_local([pid], {"type": "blob", "n": sent, "pad": frame_pad})
        sent += 1
    assert hub.connected() == 0 and hub.dropped_slow == 1
    assert sent < 64  # cut off by bytes, long before the frame limit
    assert sub.queue.empty() and sub.queued_bytes == 0
    while True:
        msg = await stalled.receive(timeout=10)
        if msg.type.name in ("CLOSE", "CLOSED", "CLOSING", "ERROR"):
            break
    await stalled.close()
