"""The send path (inbox.sending) under concurrency: sends that share transactions (group commit) leave exactly
what one send at a time would have left — messages, unread counts (R15), outbox rows (R16, R17, R19),
webhook deliveries and realtime events — and a client_msg_id is stored once (docs/api.md)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.keys import CTX
from inbox.models import Message, OutboxJob, WebhookDelivery


async def open_with_client(api: Any, cast: Any) -> int:
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")]}, token=cast.tok("clinician")
    )
    assert status == 201, conv
    return int(conv["id"])


async def test_r15_r16_r17_r19_concurrent_sends_leave_exactly_what_sequential_sends_would(
    api: Any, cast: Any, client: Any, clock: Any
) -> None:
    status, hook = await api.post(
        "/webhooks",
        {"url": "https://hooks.example.org/in", "events": ["message.created"]},
        token=cast.api_key,
    )
    assert status == 201, hook
    conv = await open_with_client(api, cast)
    writes = client.server.app[CTX].writes
    before = (writes.batches, writes.units)
    ws = await client.ws_connect("/api/v1/ws", headers={"Authorization": f"Bearer {cast.tok('client')}"})
    assert (await ws.receive_json(timeout=5)) == {"type": "unread", "unread_total": 0}

    answers = await asyncio.gather(
        *(
            api.post(f"/conversations/{conv}/messages", {"body": f"note {i}"}, token=cast.tok("clinician"))
            for i in range(20)
        )
    )
    assert [s for s, _ in answers] == [201] * 20
    ids = sorted(a["message"]["id"] for _, a in answers)
    assert len(set(ids)) == 20
    assert writes.units - before[1] == 20 and writes.batches - before[0] < 20  # they shared commits

    status, me = await api.get("/me", token=cast.tok("client"))
    assert status == 200 and me["unread_total"] == 20
    status, page = await api.get(f"/conversations/{conv}/messages?limit=50", token=cast.tok("client"))
    assert [m["id"] for m in page["items"]] == ids
    assert sorted(m["body"] for m in page["items"]) == sorted(f"note {i}" for i in range(20))

    rows = await OutboxJob.filter(message_id__in=ids).order_by("id")
    kinds: dict[str, list[int]] = {}
    for row in rows:
        kinds.setdefault(row.kind, []).append(int(row.message_id or 0))
        assert row.status == "pending" and row.attempts == 0 and row.recipient_id == cast.id("client")
        assert row.practice_id is not None and row.conversation_id == conv
    assert {k: sorted(v) for k, v in kinds.items()} == {"client_email": ids, "unread_check": ids, "push": ids}
    for row in rows:
        delay = (row.due_at - row.created_at).total_seconds()
        assert delay == (client.server.app[CTX].default_unread_delay_s if row.kind == "unread_check" else 0)
        assert row.payload == ({"push_type": "new_message"} if row.kind == "push" else {})

    deliveries = await WebhookDelivery.filter(webhook_id=hook["id"]).order_by("id")
    assert sorted(d.payload["data"]["message_id"] for d in deliveries) == ids
    for d in deliveries:
        assert d.event == "message.created" and d.status == "pending" and d.attempts == 0
        assert d.payload["id"] == d.delivery_id and set(d.payload) == {"id", "event", "created_at", "data"}
        assert d.payload["data"]["sender_id"] == cast.id("clinician")
        assert d.payload["data"]["conversation_id"] == conv
    hook_jobs = await OutboxJob.filter(kind="webhook").order_by("id")
    assert sorted(int(j.payload["delivery"]) for j in hook_jobs) == [d.id for d in deliveries]

    created, totals = [], []
    while len(created) < 20 or len(totals) < 20:
        event = await ws.receive_json(timeout=5)
        if event["type"] == "message.created":
            created.append(event["message"]["id"])
        elif event["type"] == "unread":
            totals.append(event["unread_total"])
    assert sorted(created) == ids
    assert sorted(totals) == list(range(1, 21))  # each send's own total, none skipped or repeated
    await ws.close()


async def test_the_same_client_msg_id_sent_concurrently_is_stored_once(
    api: Any, cast: Any, client: Any
) -> None:
    conv = await open_with_client(api, cast)
    path = f"/conversations/{conv}/messages"
    sends = [
        api.post(path, {"body": f"try {i}", "client_msg_id": "tap-1"}, token=cast.tok("clinician"))
        for i in range(6)
    ]
    sends += [
        api.post(path, {"body": f"other {i}", "client_msg_id": f"other-{i}"}, token=cast.tok("clinician"))
        for i in range(4)
    ]
    answers = await asyncio.gather(*sends)
    same = answers[:6]
    assert sorted(s for s, _ in same) == [200] * 5 + [201]
    assert len({a["message"]["id"] for _, a in same}) == 1
    assert [s for s, _ in answers[6:]] == [201] * 4
    stored = await Message.filter(client_msg_id="tap-1")
    assert len(stored) == 1 and stored[0].id == same[0][1]["message"]["id"]
    assert await OutboxJob.filter(message_id=stored[0].id, kind="client_email").count() == 1
    status, me = await api.get("/me", token=cast.tok("client"))
    assert me["unread_total"] == 5  # one for tap-1, four others


async def test_a_refused_send_among_concurrent_ones_fails_alone(api: Any, cast: Any, client: Any) -> None:
    conv = await open_with_client(api, cast)
    path = f"/conversations/{conv}/messages"
    status, _ = await api.patch(
        f"/team-members/{cast.id('clinician2')}", {"messaging_enabled": False}, token=cast.api_key
    )
    assert status == 200
    sends = [api.post(path, {"body": f"ok {i}"}, token=cast.tok("clinician")) for i in range(5)]
    sends.insert(2, api.post(path, {"body": "x" * 5001}, token=cast.tok("clinician")))  # R12
    sends.insert(4, api.post(path, {"body": "not yours"}, token=cast.tok("clinician2")))  # not a member
    answers = await asyncio.gather(*sends)
    assert [s for s, _ in answers] == [201, 201, 422, 201, 404, 201, 201]
    assert answers[2][1]["error"]["code"] == "message_too_long"
    status, page = await api.get(f"/conversations/{conv}/messages", token=cast.tok("client"))
    assert sorted(m["body"] for m in page["items"]) == [f"ok {i}" for i in range(5)]
    assert json.dumps(page).count("not yours") == 0


async def test_r15_the_sender_is_told_its_new_total_once_replying_cleared_its_part(
    api: Any, cast: Any, client: Any
) -> None:
    async def write(who: str, conv: int, body: str) -> None:
        status, data = await api.post(f"/conversations/{conv}/messages", {"body": body}, token=cast.tok(who))
        assert status == 201, data

    status, with_biller = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")]}, token=cast.tok("biller")
    )
    assert status == 201
    status, with_scheduler = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")]}, token=cast.tok("scheduler")
    )
    assert status == 201
    await write("biller", with_biller["id"], "a claim question")
    await write("scheduler", with_scheduler["id"], "one")
    await write("scheduler", with_scheduler["id"], "two")
    ws = await client.ws_connect("/api/v1/ws", headers={"Authorization": f"Bearer {cast.tok('clinician')}"})
    assert (await ws.receive_json(timeout=5)) == {"type": "unread", "unread_total": 3}
    await write("clinician", with_biller["id"], "answered")
    while (event := await ws.receive_json(timeout=5))["type"] != "unread":
        pass
    assert event["unread_total"] == 2  # the scheduler's two are still unread; the biller's one is answered
    status, me = await api.get("/me", token=cast.tok("clinician"))
    assert me["unread_total"] == 2
    await ws.close()
