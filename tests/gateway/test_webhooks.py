"""Outgoing webhooks (docs/api.md §3 Integration): signed, ids only, retried with backoff, listed with outcomes.

The receiver is a real aiohttp server on loopback that checks signatures the way an integrator would,
with nothing but the secret it was given and the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from pathlib import Path

import pytest
from aiohttp import web

from gateway.config import Config
from gateway.keys import CONFIG
from inbox import webhooks
from inbox.models import OutboxJob, WebhookDelivery
from tests.conftest import build_cast, make_config
from tests.gateway.claims import OTHER_WORKER, taken_before_sending
from tests.gateway.pushkit import CANARY, drain

EVENTS = ["message.created", "message.removed", "conversation.read"]


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    """The receivers here listen on loopback, which webhooks may reach only with this opt-out
    (SECUREMSG_WEBHOOK_ALLOW_PRIVATE); tests/gateway/test_webhook_targets.py shows the refusals."""
    return make_config(db_url, tmp_path / "var", webhook_allow_private=True)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[tuple[int, dict[str, str]]] = []  # what to answer next; then 200
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "nope")

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
async def receiver(aiohttp_server) -> Receiver:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/securemsg", r.handle)
    server = await aiohttp_server(app)
    r.url = str(server.make_url("/hooks/securemsg"))
    return r


def verify(secret: str, headers: dict[str, str], body: bytes, now: float, tolerance: float = 300) -> bool:
    """What a receiver does: HMAC-SHA256 over "{t}.{body}", compared in constant time, t recent."""
    fields = dict(part.split("=", 1) for part in headers["X-Securemsg-Signature"].split(","))
    t = int(fields["t"])
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(now - t) <= tolerance


async def subscribe(api, cast, url, events=EVENTS):
    status, body = await api.post("/webhooks", {"url": url, "events": events}, token=cast.api_key)
    assert status == 201, body
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    return body["id"], body["secret"]


async def client_writes(api, cast, text):
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")], "body": text}, token=cast.tok("client")
    )
    assert status in (200, 201), conv
    return conv["id"], conv["message"]["id"]


async def deliveries(api, cast, hook_id):
    status, body = await api.get(f"/webhooks/{hook_id}/deliveries", token=cast.api_key)
    assert status == 200, body
    return body["items"]


async def test_deliveries_are_signed_verifiable_and_carry_ids_only(client, api, cast, clock, receiver):
    hook_id, secret = await subscribe(api, cast, receiver.url)
    conv_id, msg_id = await client_writes(api, cast, CANARY)
    await api.post(
        f"/conversations/{conv_id}/read", {"up_to_message_id": msg_id}, token=cast.tok("clinician")
    )
    await api.delete(f"/messages/{msg_id}", token=cast.tok("client"))
    await drain(client)

    assert len(receiver.requests) == 3
    now = clock.now().timestamp()
    for headers, body in receiver.requests:
        assert verify(secret, headers, body, now)
        assert not verify(secret, headers, body.replace(b"}", b" }", 1), now)  # any change breaks it
        assert not verify("whsec_someone-else", headers, body, now)
        parsed = json.loads(body)
        assert headers["X-Securemsg-Delivery"] == parsed["id"]
        assert headers["X-Securemsg-Event"] == parsed["event"]
        assert headers["Content-Type"] == "application/json"
        assert b"CANARY" not in body and b"Client Person" not in body and b"Clinician" not in body
    by_event = {b["event"]: b["data"] for b in receiver.bodies()}
    assert by_event == {
        "message.created": {"conversation_id": conv_id, "message_id": msg_id, "sender_id": cast.id("client")},
        "conversation.read": {
            "conversation_id": conv_id,
            "participant_id": cast.id("clinician"),
            "up_to_message_id": msg_id,
        },
        "message.removed": {
            "conversation_id": conv_id,
            "message_id": msg_id,
            "removed_by": cast.id("client"),
        },
    }
    listed = await deliveries(api, cast, hook_id)
    assert sorted(d["event"] for d in listed) == sorted(EVENTS)
    assert {(d["status"], d["attempts"], d["last_status_code"]) for d in listed} == {("delivered", 1, 200)}


async def test_a_delivery_whose_claim_another_worker_took_is_left_to_it(client, api, cast, clock, receiver):
    """Issue #14: the claim on a webhook row ran out before it was posted (renewals failed for a whole
    lease) and another worker took the row: this worker posts nothing and records no attempt."""
    hook_id, _ = await subscribe(api, cast, receiver.url, ["message.created"])
    taken = taken_before_sending(client, clock, webhooks.WEBHOOK)
    await client_writes(api, cast, "hello")
    await drain(client)

    [row] = await OutboxJob.filter(kind=webhooks.WEBHOOK)
    assert taken == [row.id]
    assert receiver.requests == []
    assert (row.status, row.claimed_by, row.attempts) == ("pending", OTHER_WORKER, 0)
    [listed] = await deliveries(api, cast, hook_id)
    assert (listed["status"], listed["attempts"]) == ("pending", 0)


async def test_a_delivery_recorded_as_delivered_is_not_posted_again(client, api, cast, receiver):
    """A worker killed after it recorded the delivery and before it settled the outbox row leaves the row
    pending; the worker that takes it next finds the delivery done and posts nothing (issue #14: only the
    post in flight when a process dies can go twice)."""
    hook_id, _ = await subscribe(api, cast, receiver.url, ["message.created"])
    await client_writes(api, cast, "hello")
    await drain(client)
    assert len(receiver.requests) == 1
    # As the killed worker left it: the delivery recorded, the row still pending and its claim run out.
    await OutboxJob.filter(kind=webhooks.WEBHOOK).update(
        status="pending", finished_at=None, claimed_by=None, claimed_until=None
    )
    await drain(client)

    assert len(receiver.requests) == 1
    [row] = await OutboxJob.filter(kind=webhooks.WEBHOOK)
    assert (row.status, row.last_error) == ("skipped", "already delivered")
    [listed] = await deliveries(api, cast, hook_id)
    assert (listed["status"], listed["attempts"]) == ("delivered", 1)


async def test_a_500_is_retried_with_backoff_and_the_same_delivery_id(client, api, cast, clock, receiver):
    hook_id, secret = await subscribe(api, cast, receiver.url, ["message.created"])
    receiver.answers = [(500, {}), (503, {})]
    await client_writes(api, cast, "hello")
    await drain(client)
    [pending] = await deliveries(api, cast, hook_id)
    assert (pending["status"], pending["attempts"], pending["last_status_code"]) == ("pending", 1, 500)
    assert pending["last_error"] == "HTTP 500" and pending["delivered_at"] is None
    [job] = await OutboxJob.filter(kind=webhooks.WEBHOOK)
    assert (job.due_at - clock.now()).total_seconds() == 1

    clock.advance(1)
    await drain(client)
    clock.advance(1)
    await drain(client)  # not due: the second failure backs off 2 s
    assert len(receiver.requests) == 2
    clock.advance(1)
    await drain(client)
    [done] = await deliveries(api, cast, hook_id)
    assert (done["status"], done["attempts"], done["last_status_code"], done["last_error"]) == (
        "delivered",
        3,
        200,
        None,
    )
    assert done["delivered_at"] is not None
    # Every attempt is the same delivery (one idempotency id, the same bytes), each freshly signed.
    assert len({h["X-Securemsg-Delivery"] for h, _ in receiver.requests}) == 1
    assert len({body for _, body in receiver.requests}) == 1
    headers, body = receiver.requests[-1]
    assert verify(secret, headers, body, clock.now().timestamp())
    clock.advance(3600)
    await drain(client)
    assert len(receiver.requests) == 3


async def test_a_429_honours_retry_after(client, api, cast, clock, receiver):
    await subscribe(api, cast, receiver.url, ["message.created"])
    receiver.answers = [(429, {"Retry-After": "120"})]
    await client_writes(api, cast, "hello")
    await drain(client)
    [job] = await OutboxJob.filter(kind=webhooks.WEBHOOK)
    assert job.status == "pending" and (job.due_at - clock.now()).total_seconds() == 120


async def test_an_unreachable_receiver_is_retried_and_another_4xx_is_final(
    client, api, cast, clock, receiver
):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    down_id, _ = await subscribe(api, cast, f"http://127.0.0.1:{closed_port}/hook", ["message.created"])
    gone_id, _ = await subscribe(api, cast, receiver.url, ["message.created"])
    receiver.answers = [(410, {})]
    await client_writes(api, cast, "hello")
    await drain(client)
    [down] = await deliveries(api, cast, down_id)
    assert down["status"] == "pending" and down["last_error"] == "connection failed"  # no socket error text
    assert down["last_status_code"] is None
    [gone] = await deliveries(api, cast, gone_id)
    assert (gone["status"], gone["last_status_code"], gone["last_error"]) == ("failed", 410, "HTTP 410")
    clock.advance(3600)
    await drain(client)
    assert len(receiver.requests) == 1  # the 410 is not retried


async def test_a_delivery_that_fails_for_a_day_is_given_up_and_says_so(client, api, cast, clock, receiver):
    hook_id, _ = await subscribe(api, cast, receiver.url, ["message.created"])
    receiver.answers = [(502, {})] * 100
    await client_writes(api, cast, "hello")
    for _ in range(40):
        await drain(client)
        clock.advance(3600)
    [given_up] = await deliveries(api, cast, hook_id)
    assert given_up["status"] == "failed" and given_up["last_error"].startswith("gave up after a day")
    assert (await OutboxJob.get(kind=webhooks.WEBHOOK)).status == "failed"
    assert 10 < len(receiver.requests) < 40  # backing off to an hour apart, not once per drain


async def test_only_subscribed_events_are_delivered(client, api, cast, receiver):
    await subscribe(api, cast, receiver.url, ["conversation.read"])
    conv_id, msg_id = await client_writes(api, cast, "hello")
    await api.post(
        f"/conversations/{conv_id}/read", {"up_to_message_id": msg_id}, token=cast.tok("clinician")
    )
    await api.post(
        f"/conversations/{conv_id}/read", {"up_to_message_id": msg_id}, token=cast.tok("clinician")
    )
    await drain(client)
    assert [b["event"] for b in receiver.bodies()] == ["conversation.read"]  # a re-read changes nothing


async def test_a_removed_webhook_gets_nothing_more(client, api, cast, receiver):
    hook_id, _ = await subscribe(api, cast, receiver.url, ["message.created"])
    await client_writes(api, cast, "hello")
    status, body = await api.delete(f"/webhooks/{hook_id}", token=cast.api_key)
    assert status == 200 and body["active"] is False
    await drain(client)
    assert receiver.requests == []
    [cancelled] = await deliveries(api, cast, hook_id)  # the history stays readable
    assert cancelled["status"] == "cancelled"
    _, listed = await api.get("/webhooks", token=cast.api_key)
    assert listed["items"] == []


BAD_SUBSCRIPTIONS = [
    ({"url": "ftp://example.org/hook"}, "url"),
    ({"url": "example.org/hook"}, "url"),
    ({"url": "http://"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "https://user:secret@example.org/hook"}, "url"),
    ({"url": "https://example.org/hook#frag"}, "url"),
    ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
    ({"url": "http://[::ffff:169.254.169.254]/"}, "url"),
    ({"url": "http://example.org:99999/hook"}, "url"),
    ({"url": "https://example.org/" + "a" * 1000}, "url"),
    ({"url": "https://exa mple.org/"}, "url"),
    ({"url": 42}, "url"),
    ({"events": []}, "events"),
    ({"events": ["message.deleted"]}, "events"),
    ({"events": "message.created"}, "events"),
    ({"events": [1]}, "events"),
    ({"secret": "mine"}, "secret"),
]


async def test_bad_subscriptions_are_422_naming_the_field(client, api, cast):
    for change, field in BAD_SUBSCRIPTIONS:
        body = {"url": "https://crm.example.org/hooks", "events": ["message.created"]} | change
        status, answer = await api.post("/webhooks", body, token=cast.api_key)
        assert (status, answer["error"].get("field")) == (422, field), (change, answer)
    for missing in ("url", "events"):
        body = {"url": "https://crm.example.org/hooks", "events": ["message.created"]}
        del body[missing]
        status, answer = await api.post("/webhooks", body, token=cast.api_key)
        assert (status, answer["error"]["field"]) == (422, missing)
    _, listed = await api.get("/webhooks", token=cast.api_key)
    assert listed["items"] == []


async def test_webhooks_belong_to_the_practice_and_need_its_api_key(client, api, cast, clock, receiver):
    hook_id, _ = await subscribe(api, cast, receiver.url, ["message.created"])
    other = await build_cast(api, client.server.app[CONFIG], clock, name="Elsewhere Therapy")
    status, body = await api.get("/webhooks/99999999999/deliveries", token=cast.api_key)
    assert status == 404 and body["error"]["code"] == "not_found"
    for call in (
        api.get(f"/webhooks/{hook_id}/deliveries", token=other.api_key),
        api.delete(f"/webhooks/{hook_id}", token=other.api_key),
    ):
        status, body = await call
        assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await api.post(
        "/webhooks", {"url": receiver.url, "events": ["message.created"]}, token=cast.tok("owner")
    )
    assert status == 403 and body["error"]["code"] == "api_key_required"
    # The other practice's messages never reach this practice's webhook.
    await api.post(
        "/conversations",
        {"participant_ids": [other.id("clinician")], "body": "hi"},
        token=other.tok("client"),
    )
    await drain(client)
    assert receiver.requests == []
    assert await WebhookDelivery.all().count() == 0
