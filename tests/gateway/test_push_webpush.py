"""Browser notifications (Web Push) through the whole server: a subscription registered with POST /devices,
a message sent, the dispatcher's push row, and what the loopback push service (tests/fakes/webpush.py)
received and DECRYPTED with the subscription's own keys. The same outbox, retries, alert switches (R19),
dead-subscription handling and metrics as the phones'."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.keys import CTX
from gateway.metrics import METRICS
from inbox import devices, pushes
from inbox.models import Device, OutboxJob, Participant
from push.webpush import application_server_key, load_vapid_key
from tests.conftest import make_config
from tests.fakes.webpush import FakeSubscription, FakeWebPush, PushReply
from tests.gateway.pushkit import CANARY, drain, jobs


@pytest.fixture
def config(db_url: str, tmp_path: Path, tls_certs, monkeypatch: pytest.MonkeyPatch) -> Config:
    # The fake push service listens on 127.0.0.1 with the test CA: allowed the way webhook tests allow
    # their loopback receivers, and trusted the way production trusts a private CA (SSL_CERT_FILE).
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_cert))
    return make_config(
        db_url, tmp_path / "var", webpush_allow_private=True, public_url="https://msg.example.org"
    )


async def vapid_key(api, token: str) -> str:
    status, body = await api.get("/webpush/vapid-public-key", token=token)
    assert status == 200, body
    return body["public_key"]


async def subscribe(api, fake: FakeWebPush, token: str) -> tuple[FakeSubscription, int]:
    """What the page does: subscribe with the server's key, then register the subscription."""
    sub = fake.subscribe(await vapid_key(api, token))
    status, body = await api.post(
        "/devices", {"platform": "webpush", "app": "practice", "subscription": sub.to_json()}, token=token
    )
    assert status == 201, body
    assert body["platform"] == "webpush" and body["enabled"] is True
    return sub, body["id"]


async def write_to_clinician(api, cast, body="hello") -> int:
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")], "body": body}, token=cast.tok("client")
    )
    assert status in (200, 201), conv
    return conv["id"]


async def test_r19_a_clinician_gets_a_browser_notification_for_a_new_message(client, api, cast, fake_webpush):
    sub, _ = await subscribe(api, fake_webpush, cast.tok("clinician"))
    conversation = await write_to_clinician(api, cast)
    await drain(client)
    assert fake_webpush.errors == []
    assert fake_webpush.payloads(sub) == [
        {
            "conversation_id": str(conversation),
            "link": f"securemsg://conversations/{conversation}",
            "web_link": f"https://msg.example.org/inbox?conversation={conversation}",
            "type": "new_message",
            "title": "New secure message",
            "badge": 1,
            "tag": f"conversation-{conversation}",
        }
    ]
    [got] = fake_webpush.received
    assert got.claims["aud"] == fake_webpush.origin
    # The contact push services see: the public URL when it is https (else mailto: the From address).
    assert got.claims["sub"] == "https://msg.example.org"
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "done"
    assert client.server.app[METRICS].pushes_sent["webpush"] == 1


async def test_r19_r20_a_browser_push_holds_no_message_text_no_name_no_away_text(
    client, api, cast, fake_webpush
):
    clinician = cast.tok("clinician")
    sub, _ = await subscribe(api, fake_webpush, clinician)
    status, _ = await api.put("/me/away", {"enabled": True, "message": f"Away: {CANARY}"}, token=clinician)
    assert status == 200
    # The clinician writes to the client and the client answers: both sides' names, the away text and
    # the message text are all in play.
    conversation = await write_to_clinician(api, cast, f"{CANARY} (from the client)")
    status, _ = await api.post(
        f"/conversations/{conversation}/messages", {"body": f"{CANARY} again"}, token=cast.tok("client")
    )
    assert status == 201
    await drain(client)
    assert len(fake_webpush.payloads(sub)) == 2 and fake_webpush.errors == []
    names = [p.name for p in await Participant.filter(id__in=[cast.id("client"), cast.id("clinician")])]
    for request in fake_webpush.received:
        seen = repr(request.payload) + repr(request.headers) + repr(request.claims)
        for secret in (CANARY, "CANARY", "Away", *names, "Riverbend"):
            assert secret not in seen, secret


async def test_r19_the_browsers_alert_switches_choose_what_it_gets(client, api, cast, fake_webpush):
    clinician = cast.tok("clinician")
    sub, device_id = await subscribe(api, fake_webpush, clinician)
    status, body = await api.patch(
        f"/devices/{device_id}", {"alerts": {"new_message": False}}, token=clinician
    )
    assert status == 200 and body["alerts"]["new_message"] is False
    await write_to_clinician(api, cast)
    status, _ = await api.post(
        "/events",
        {
            "type": "video_appointment",
            "participant_id": cast.id("clinician"),
            "appointment_id": "A-7",
            "starts_at": "2026-01-05T09:05:00Z",
        },
        token=cast.api_key,
    )
    assert status == 202
    await drain(client)
    [payload] = fake_webpush.payloads(sub)
    assert payload["type"] == "video_appointment" and payload["appointment_id"] == "A-7"
    assert payload["title"] == "Video appointment" and "web_link" not in payload


async def test_a_browser_gets_no_silent_badge_update(client, api, cast, fake_webpush):
    sub, _ = await subscribe(api, fake_webpush, cast.tok("clinician"))
    conversation = await write_to_clinician(api, cast)
    await drain(client)
    [message] = (await api.get(f"/conversations/{conversation}/messages", token=cast.tok("clinician")))[1][
        "items"
    ]
    status, _ = await api.post(
        f"/conversations/{conversation}/read",
        {"up_to_message_id": message["id"]},
        token=cast.tok("clinician"),
    )
    assert status == 200
    await drain(client)
    assert await jobs(pushes.PUSH_BADGE) == []  # the browser was the only other device: nothing to update
    assert len(fake_webpush.payloads(sub)) == 1


@pytest.mark.parametrize("status", [404, 410])
async def test_a_dead_subscription_disables_its_device(client, api, cast, fake_webpush, status):
    sub, device_id = await subscribe(api, fake_webpush, cast.tok("clinician"))
    fake_webpush.reply_to(sub, PushReply(status))
    await write_to_clinician(api, cast)
    await drain(client)
    stored = await Device.get(id=device_id)
    assert stored.enabled is False
    assert stored.disabled_reason == "the browser's push service ended this subscription"
    metrics = client.server.app[METRICS]
    assert metrics.tokens_disabled["webpush"] == 1 and metrics.pushes_failed[("webpush", "dead_token")] == 1
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "done"

    await write_to_clinician(api, cast, "again")
    await drain(client)
    assert len(fake_webpush.received) == 1  # never tried again
    # The browser subscribes again (the page's switch): the same device, enabled.
    fake_webpush.replies.clear()
    status_code, body = await api.post(
        "/devices",
        {"platform": "webpush", "app": "practice", "subscription": sub.to_json()},
        token=cast.tok("clinician"),
    )
    assert status_code == 201 and body["id"] == device_id and body["enabled"] is True


async def test_a_busy_push_service_is_retried_with_backoff(client, api, cast, fake_webpush, clock):
    sub, _ = await subscribe(api, fake_webpush, cast.tok("clinician"))
    fake_webpush.reply_to(sub, PushReply(429, retry_after=30))
    await write_to_clinician(api, cast)
    await drain(client)
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "pending" and "1 to retry" in row.last_error
    fake_webpush.replies.clear()
    clock.advance(29)
    await drain(client)
    assert len(fake_webpush.received) == 1  # Retry-After honoured
    clock.advance(2)
    await drain(client)
    assert len(fake_webpush.payloads(sub)) == 2  # the first was answered 429, the second delivered
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "done"
    assert client.server.app[METRICS].pushes_failed[("webpush", "temporary")] == 1


async def test_the_subscription_is_sealed_and_its_endpoint_not_stored_in_clear(
    client, api, cast, fake_webpush
):
    sub, device_id = await subscribe(api, fake_webpush, cast.tok("clinician"))
    row = await Device.get(id=device_id)
    assert row.token.startswith("sha256:") and sub.id not in row.token
    assert sub.id.encode() not in bytes(row.subscription_cipher)
    opened = devices.subscription_of(client.server.app[CTX], row)
    assert opened is not None and opened.endpoint == sub.endpoint
    status, body = await api.get("/devices", token=cast.tok("clinician"))
    assert status == 200 and body["items"][0]["subscription_id"] == row.token


async def test_the_vapid_key_is_made_owner_only_and_served_to_signed_in_people(client, api, cast, config):
    path = config.var_dir / "vapid.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    expected = application_server_key(load_vapid_key(path.read_text()))
    assert await vapid_key(api, cast.tok("client")) == expected
    status, body = await api.get("/webpush/vapid-public-key")
    assert status == 401 and body["error"]["code"] == "unauthenticated"


async def test_the_service_worker_may_take_the_inbox_scope(client):
    resp = await client.get("/inbox/sw.js")
    assert resp.status == 200
    assert resp.headers["Service-Worker-Allowed"] == "/inbox"
    assert resp.headers["Content-Type"].startswith("text/javascript")
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    text = await resp.text()
    assert 'addEventListener("push"' in text and 'addEventListener("notificationclick"' in text


async def test_a_signed_out_browser_gets_nothing_more(client, api, cast, fake_webpush):
    sub, device_id = await subscribe(api, fake_webpush, cast.tok("clinician"))
    status, _ = await api.post("/auth/logout", token=cast.tok("clinician"))
    assert status == 200
    assert not await Device.filter(id=device_id).exists()
    await write_to_clinician(api, cast)
    await drain(client)
    assert fake_webpush.received == []
    assert [r.status for r in await OutboxJob.filter(kind=pushes.PUSH_NEW_MESSAGE)] == ["skipped"]


def test_the_vapid_subject_is_the_public_url_or_the_from_address(tmp_path: Path) -> None:
    from gateway.config import webpush_subject_of

    base = make_config("sqlite://:memory:", tmp_path, smtp_from="care@practice.example")
    assert webpush_subject_of(base) == "mailto:care@practice.example"
    assert (
        webpush_subject_of(base.with_overrides(public_url="https://msg.example.org"))
        == "https://msg.example.org"
    )
    assert (
        webpush_subject_of(base.with_overrides(webpush_subject="mailto:ops@x.example"))
        == "mailto:ops@x.example"
    )


def _keys(sub: FakeSubscription) -> dict:
    return sub.to_json()["keys"]


BAD_SUBSCRIPTIONS = [
    # (what to change, error code, field)
    ({"endpoint": "http://127.0.0.1/push/1"}, "invalid_subscription", "subscription.endpoint"),
    ({"endpoint": "https://user:pw@127.0.0.1/push/1"}, "invalid_subscription", "subscription.endpoint"),
    ({"endpoint": "https://127.0.0.1/push/1#x"}, "invalid_subscription", "subscription.endpoint"),
    ({"endpoint": "https://127.0.0.1/push/1 2"}, "invalid_subscription", "subscription.endpoint"),
    ({"endpoint": "https://127.0.0.1:99999/push"}, "invalid_subscription", "subscription.endpoint"),
    ({"endpoint": "https://127.0.0.1/" + "a" * 2100}, "invalid_subscription", "subscription.endpoint"),
    ({"endpoint": 7}, "invalid_subscription", "subscription.endpoint"),
    ({"keys": {"auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "invalid_subscription", "subscription.keys.p256dh"),
    (
        {"keys": {"p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}},
        "invalid_subscription",
        "subscription.keys.p256dh",
    ),
    # 65 bytes starting 0x04, but not a point on the curve
    (
        {"keys": {"p256dh": "BA" + "A" * 85, "auth": "AAAAAAAAAAAAAAAAAAAAAA"}},
        "invalid_subscription",
        "subscription.keys.p256dh",
    ),
    ({"keys": "x"}, "invalid_subscription", "subscription.keys"),
    ({"expirationTime": "soon"}, "invalid_subscription", "subscription.expirationTime"),
    ({"extra": 1}, "invalid_subscription", "subscription.extra"),
]


@pytest.mark.parametrize(("change", "code", "field"), BAD_SUBSCRIPTIONS)
async def test_a_malformed_subscription_is_a_clear_422(client, api, cast, fake_webpush, change, code, field):
    sub = fake_webpush.subscribe(await vapid_key(api, cast.tok("clinician")))
    body = sub.to_json() | change
    status, answer = await api.post(
        "/devices",
        {"platform": "webpush", "app": "practice", "subscription": body},
        token=cast.tok("clinician"),
    )
    assert status == 422, answer
    assert answer["error"]["code"] == code and answer["error"]["field"] == field
    assert await Device.all().count() == 0


async def test_keys_of_the_wrong_size_or_alphabet_are_refused(client, api, cast, fake_webpush):
    sub = fake_webpush.subscribe(await vapid_key(api, cast.tok("clinician")))
    good = _keys(sub)
    for keys, field in [
        ({**good, "auth": good["auth"][:-2]}, "subscription.keys.auth"),  # 15 bytes
        ({**good, "auth": good["auth"] + "AAAA"}, "subscription.keys.auth"),  # 19 bytes
        ({**good, "auth": "+/" + good["auth"][2:]}, "subscription.keys.auth"),  # base64, not base64url
        ({**good, "p256dh": good["p256dh"][:-4]}, "subscription.keys.p256dh"),
    ]:
        status, answer = await api.post(
            "/devices",
            {"platform": "webpush", "app": "practice", "subscription": sub.to_json() | {"keys": keys}},
            token=cast.tok("clinician"),
        )
        assert status == 422 and answer["error"]["field"] == field, (keys, answer)


async def test_a_browser_sends_its_subscription_and_a_phone_its_token(client, api, cast, fake_webpush):
    sub = fake_webpush.subscribe(await vapid_key(api, cast.tok("clinician")))
    cases = [
        ({"platform": "webpush", "app": "practice"}, 422, "missing_field"),
        (
            {"platform": "webpush", "app": "practice", "token": "x" * 64, "subscription": sub.to_json()},
            422,
            "invalid_device_token",
        ),
        ({"platform": "webpush", "app": "practice", "subscription": "x"}, 422, "invalid_field"),
        (
            {"platform": "apns", "app": "practice", "token": "a" * 64, "subscription": sub.to_json()},
            422,
            "invalid_subscription",
        ),
        ({"platform": "apns", "app": "practice"}, 422, "missing_field"),
        ({"platform": "webpush", "app": "kiosk", "subscription": sub.to_json()}, 422, "invalid_app"),
    ]
    for body, status, code in cases:
        got, answer = await api.post("/devices", body, token=cast.tok("clinician"))
        assert (got, answer["error"]["code"]) == (status, code), body
    status, answer = await api.post(
        "/devices",
        {"platform": "webpush", "app": "practice", "subscription": sub.to_json()},
        token=cast.api_key,
    )
    assert status == 403 and answer["error"]["code"] == "participant_required"


# --- the outbound guard ------------------------------------------------------------------------------


@pytest.fixture
def guarded(db_url: str, tmp_path: Path, tls_certs, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_cert))
    return make_config(db_url, tmp_path / "var")


async def test_endpoints_at_internal_addresses_are_refused_at_registration(
    aiohttp_client, guarded, clock, fake_webpush
):
    from gateway.app import create_app
    from tests.conftest import Api, build_cast

    client = await aiohttp_client(create_app(guarded, clock=clock))
    api = Api(client)
    cast = await build_cast(api, guarded, clock)
    sub = fake_webpush.subscribe(await vapid_key(api, cast.tok("clinician")))
    for host in ("127.0.0.1", "localhost", "10.0.0.8", "[::1]", "169.254.169.254", "192.168.1.1"):
        body = sub.to_json() | {"endpoint": f"https://{host}/push/abc"}
        status, answer = await api.post(
            "/devices",
            {"platform": "webpush", "app": "practice", "subscription": body},
            token=cast.tok("clinician"),
        )
        assert status == 422 and answer["error"]["code"] == "webpush_endpoint_not_public", host
        assert answer["error"]["field"] == "subscription.endpoint"


async def test_an_endpoint_that_resolves_to_an_internal_address_is_dead_at_delivery(
    aiohttp_client, guarded, clock, fake_webpush
):
    from gateway.app import create_app
    from tests.conftest import Api, build_cast

    client = await aiohttp_client(create_app(guarded, clock=clock))
    api = Api(client)
    cast = await build_cast(api, guarded, clock)
    name = socket.gethostname()  # a name, so nothing to refuse at registration, that leads inside
    sub = fake_webpush.subscribe(await vapid_key(api, cast.tok("clinician")))
    sub.endpoint = sub.endpoint.replace("127.0.0.1", name)
    status, body = await api.post(
        "/devices",
        {"platform": "webpush", "app": "practice", "subscription": sub.to_json()},
        token=cast.tok("clinician"),
    )
    assert status == 201, body
    # And one stored before the guard could see it (say, under SECUREMSG_WEBPUSH_ALLOW_PRIVATE=1 then).
    literal = fake_webpush.subscribe(sub.application_server_key)
    clinician = await Participant.get(id=cast.id("clinician"))
    device, _ = await devices.register_device(
        client.server.app[CTX],
        clinician,
        None,
        platform="webpush",
        app="practice",
        subscription=literal.to_json(),
        allow_private=True,
    )
    await write_to_clinician(api, cast)
    await drain(client)
    assert fake_webpush.received == []  # never connected
    for stored in await Device.filter(participant_id=clinician.id):
        assert stored.enabled is False, stored.id
    assert device.id in {d.id for d in await Device.filter(participant_id=clinician.id)}
