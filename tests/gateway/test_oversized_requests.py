"""Oversized requests are refused early, with docs/api.md's errors, and leave nothing behind.

- A JSON body over the limit (MAX_BODY_BYTES) is 413 `request_too_large` on every operation that takes one
  (the list comes from the OpenAPI description, so a new endpoint is covered when it is described); a
  Content-Length over the limit is answered before the body is sent; a chunked body is cut at the limit.
- A list with too many ids is 413 `too_many_items` (participant_ids, message_ids, roles, events), a query
  with too many ids is 422, and nothing is stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.openapi import document
from gateway.validation import MAX_BODY_BYTES
from inbox import messaging, records
from tests.conftest import Api, Cast

OVER = {"padding": "x" * (MAX_BODY_BYTES + 10)}


def _operations_with_bodies() -> list[Any]:
    out = []
    for path, ops in document()["paths"].items():
        for method, operation in ops.items():
            if "requestBody" in operation:
                schemes = {name for requirement in operation["security"] for name in requirement}
                who = None if not schemes else "api_key" if "apiKey" in schemes else "owner"
                out.append(pytest.param(method.upper(), path, who, id=f"{method.upper()} {path}"))
    return out


@pytest.mark.parametrize(("method", "path", "who"), _operations_with_bodies())
async def test_a_body_over_the_limit_is_413(
    api: Api, cast: Cast, method: str, path: str, who: str | None
) -> None:
    token = None if who is None else cast.api_key if who == "api_key" else cast.tok(who)
    url = path.replace("{id}", "1")
    status, body = await api.call(method, url, OVER, token=token)
    assert status == 413, body
    assert body["error"]["code"] == "request_too_large"


async def test_a_content_length_over_the_limit_is_answered_before_the_body_is_sent(
    client: Any, cast: Cast
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(
            b"POST /api/v1/conversations HTTP/1.1\r\nHost: test\r\n"
            + f"Authorization: Bearer {cast.tok('clinician')}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n"
        )
        await writer.drain()
        # 100 MB announced, none sent: the answer comes at once, not after a read that never ends.
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


async def test_a_chunked_body_over_the_limit_is_cut_at_the_limit(client: Any, cast: Cast) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"participant_ids": [1], "body": "'
        for _ in range(64):  # 4 MiB offered in 64 KiB chunks, no Content-Length
            yield b"y" * 65536

    resp = await client.post(
        "/api/v1/conversations",
        data=chunks(),
        headers={"Authorization": f"Bearer {cast.tok('clinician')}", "Content-Type": "application/json"},
    )
    body = await resp.json()
    assert resp.status == 413 and body["error"]["code"] == "request_too_large", body


async def test_a_body_that_arrives_in_pieces_is_read_whole(client: Any, cast: Cast) -> None:
    """A body within the limit, sent chunked in small pieces with pauses (a slow link): the whole of it is
    read, not the first piece that had arrived."""
    text = "Running ten minutes late." * 196  # 4,900 characters, within R12
    payload = json.dumps({"participant_ids": [cast.id("client")], "body": text}).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 512):
            yield payload[i : i + 512]
            await asyncio.sleep(0.005)

    resp = await client.post(
        "/api/v1/conversations",
        data=pieces(),
        headers={"Authorization": f"Bearer {cast.tok('clinician')}", "Content-Type": "application/json"},
    )
    body = await resp.json()
    assert resp.status == 201, body
    assert body["message"]["body"] == text


async def _nothing_opened(api: Api, cast: Cast) -> None:
    status, body = await api.get("/conversations", token=cast.tok("clinician"))
    assert status == 200 and body["items"] == []


async def test_too_many_participant_ids_is_413_and_opens_nothing(api: Api, cast: Cast) -> None:
    ids = [cast.id("client")] + list(range(10**6, 10**6 + messaging.MAX_PARTICIPANTS))
    status, body = await api.post(
        "/conversations", {"participant_ids": ids, "body": "hello"}, token=cast.tok("clinician")
    )
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        413,
        "too_many_items",
        "participant_ids",
    )
    await _nothing_opened(api, cast)


async def test_too_many_message_ids_for_a_chart_note_is_413(api: Api, cast: Cast) -> None:
    ids = list(range(1, records.MAX_NOTE_MESSAGES + 2))
    status, body = await api.post(
        f"/clients/{cast.id('client')}/chart-notes", {"message_ids": ids}, token=cast.tok("clinician")
    )
    assert (status, body["error"]["code"], body["error"]["field"]) == (413, "too_many_items", "message_ids")
    status, body = await api.get(f"/clients/{cast.id('client')}/chart-notes", token=cast.tok("clinician"))
    assert status == 200 and body["items"] == []


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_too_many_roles_is_413(api: Api, cast: Cast, method: str) -> None:
    roles = ["biller"] * 7
    if method == "POST":
        body_in: dict[str, Any] = {"name": "Roy", "email": "roy@example.org", "roles": roles}
        status, body = await api.post("/team-members", body_in, token=cast.api_key)
    else:
        status, body = await api.patch(
            f"/team-members/{cast.id('biller')}", {"roles": roles}, token=cast.api_key
        )
    assert (status, body["error"]["code"], body["error"]["field"]) == (413, "too_many_items", "roles")
    status, body = await api.get("/team-members", token=cast.api_key)
    assert "roy@example.org" not in json.dumps(body)


async def test_too_many_webhook_events_is_413(api: Api, cast: Cast) -> None:
    events = ["message.created"] * 4
    status, body = await api.post(
        "/webhooks", {"url": "https://example.org/h", "events": events}, token=cast.api_key
    )
    assert (status, body["error"]["code"]) == (413, "too_many_items")
    status, body = await api.get("/webhooks", token=cast.api_key)
    assert body["items"] == []


async def test_too_many_transcript_participants_is_422(api: Api, cast: Cast) -> None:
    ids = ",".join(str(i) for i in range(1, records.MAX_FILTER_IDS + 2))
    status, body = await api.get(
        f"/clients/{cast.id('client')}/transcripts", token=cast.tok("clinician"), params={"participants": ids}
    )
    assert (status, body["error"]["code"]) == (422, "invalid_query")


async def test_too_many_alert_flags_is_422(api: Api, cast: Cast) -> None:
    status, device = await api.post(
        "/devices", {"platform": "apns", "token": "ab" * 32, "app": "practice"}, token=cast.tok("clinician")
    )
    assert status == 201
    alerts = {f"flag{i}": True for i in range(1000)}
    status, body = await api.patch(
        f"/devices/{device['id']}", {"alerts": alerts}, token=cast.tok("clinician")
    )
    assert (status, body["error"]["code"]) == (422, "invalid_alerts")


async def test_a_message_over_5000_characters_is_422(api: Api, cast: Cast) -> None:
    # Under the byte limit, over R12's: the domain's own refusal, and nothing is sent.
    status, body = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client")], "body": "z" * (messaging.MAX_BODY + 1)},
        token=cast.tok("clinician"),
    )
    assert (status, body["error"]["code"], body["error"]["rule"]) == (422, "message_too_long", "R12")
    await _nothing_opened(api, cast)
