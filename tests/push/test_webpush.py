"""WebPushProvider against FakeWebPush: a push service on loopback (TLS, the test CA) that checks the VAPID
JWT (RFC 8292) and decrypts every body (RFC 8291) with the subscription's own keys, as the browser would."""

from __future__ import annotations

import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from push.base import PushMessage, WebPushKeys
from push.webpush import (
    WebPushProvider,
    WebPushSettings,
    application_server_key,
    encrypt,
    load_vapid_key,
    new_vapid_pem,
    pem_from_raw,
    read_or_create_vapid_key,
)
from tests.fakes.certs import CertPaths
from tests.fakes.webpush import FakeSubscription, FakeWebPush, PushReply, decrypt, unb64url

# RFC 8291 §5 and Appendix A: the worked example, to the byte.
RFC = {
    "plaintext": b"When I grow up, I want to be a watermelon",
    "ua_public": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
    "ua_private": "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
    "as_private": "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
    "auth": "BTBZMqHH6r4Tts7J_aSIgg",
    "salt": "DGv6ra1nlYgDCS1FRnbzlw",
    "body": "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8"
    "wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
}
SUBJECT = "mailto:ops@practice.example"


def private(b64: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(unb64url(b64), "big"), ec.SECP256R1())


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vapid_pem() -> str:
    return new_vapid_pem().decode()


@pytest.fixture
async def provider(vapid_pem: str, tls_certs: CertPaths) -> AsyncIterator[WebPushProvider]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_certs.client_context()))
    provider = WebPushProvider(WebPushSettings(vapid_pem=vapid_pem, subject=SUBJECT), session)
    yield provider
    await provider.close()
    await session.close()


def subscribe(fake: FakeWebPush, provider: WebPushProvider) -> FakeSubscription:
    return fake.subscribe(provider.public_key)


def message(sub: FakeSubscription, push_type: str = "new_message", conversation_id: int = 12) -> PushMessage:
    keys = sub.to_json()["keys"]
    return PushMessage(
        token=sub.endpoint,
        push_type=push_type,
        data={
            "conversation_id": str(conversation_id),
            "link": f"securemsg://conversations/{conversation_id}",
            "web_link": f"https://msg.example.org/inbox?conversation={conversation_id}",
        },
        badge=3,
        collapse_key=f"conversation-{conversation_id}",
        title="New secure message",
        keys=WebPushKeys(p256dh=unb64url(keys["p256dh"]), auth=unb64url(keys["auth"])),
    )


def test_the_fakes_decryption_opens_the_rfc_8291_example() -> None:
    body = unb64url(RFC["body"])
    assert decrypt(body, private(RFC["ua_private"]), unb64url(RFC["auth"])) == RFC["plaintext"]


def test_our_encryption_gives_the_rfc_8291_example() -> None:
    sealed = encrypt(
        RFC["plaintext"],
        unb64url(RFC["ua_public"]),
        unb64url(RFC["auth"]),
        ephemeral=private(RFC["as_private"]),
        salt=unb64url(RFC["salt"]),
    )
    assert sealed == unb64url(RFC["body"])


async def test_a_push_arrives_encrypted_and_signed(
    fake_webpush: FakeWebPush, provider: WebPushProvider
) -> None:
    sub = subscribe(fake_webpush, provider)
    result = await provider.send([message(sub)])
    assert result.delivered == [sub.endpoint]
    assert fake_webpush.errors == []
    [got] = fake_webpush.received
    assert got.payload == {
        "conversation_id": "12",
        "link": "securemsg://conversations/12",
        "web_link": "https://msg.example.org/inbox?conversation=12",
        "type": "new_message",
        "title": "New secure message",
        "badge": 3,
        "tag": "conversation-12",
    }
    assert got.claims["aud"] == fake_webpush.origin and got.claims["sub"] == SUBJECT
    assert got.headers["Content-Encoding"] == "aes128gcm"
    assert got.headers["Urgency"] == "high" and got.headers["Topic"] == "conversation-12"
    assert int(got.headers["TTL"]) == 86400
    assert b"conversation" not in got.body  # what travels is ciphertext


async def test_each_push_is_encrypted_anew(fake_webpush: FakeWebPush, provider: WebPushProvider) -> None:
    sub = subscribe(fake_webpush, provider)
    await provider.send([message(sub), message(sub)])
    first, second = (r.body for r in fake_webpush.received)
    assert first[:16] != second[:16]  # salt
    assert first[21:86] != second[21:86]  # the ephemeral public key (RFC 8291: one per message)
    assert fake_webpush.payloads(sub)[0] == fake_webpush.payloads(sub)[1]


async def test_the_vapid_jwt_is_reused_for_an_hour_then_signed_again(
    fake_webpush: FakeWebPush, vapid_pem: str, tls_certs: CertPaths
) -> None:
    clock = Clock()
    fake_webpush.now = clock
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_certs.client_context()))
    provider = WebPushProvider(WebPushSettings(vapid_pem=vapid_pem, subject=SUBJECT), session, now=clock)
    try:
        sub = subscribe(fake_webpush, provider)
        await provider.send([message(sub)])
        clock.now += 3599
        await provider.send([message(sub)])
        clock.now += 2
        await provider.send([message(sub)])
    finally:
        await provider.close()
        await session.close()
    assert fake_webpush.errors == []
    exps = [r.claims["exp"] for r in fake_webpush.received]
    assert exps[0] == exps[1] == 1_800_000_000 + 12 * 3600
    assert exps[2] == 1_800_000_000 + 3601 + 12 * 3600


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (PushReply(404), "dead"),
        (PushReply(410, body="subscription expired"), "dead"),
        (PushReply(429, retry_after=30), "retry"),
        (PushReply(500), "retry"),
        (PushReply(503), "retry"),
        (PushReply(413), "failed"),
        (PushReply(400), "failed"),
    ],
)
async def test_answers_are_sorted(
    fake_webpush: FakeWebPush, provider: WebPushProvider, reply: PushReply, kind: str
) -> None:
    sub = subscribe(fake_webpush, provider)
    fake_webpush.reply_to(sub, reply)
    result = await provider.send([message(sub)])
    assert {
        "dead": result.dead_tokens,
        "retry": result.retry_tokens,
        "failed": list(result.failed),
    }[kind] == [sub.endpoint]
    if reply.retry_after is not None:
        assert result.retry_after == 30


async def test_a_subscription_made_for_another_key_is_refused_by_the_push_service(
    fake_webpush: FakeWebPush, provider: WebPushProvider
) -> None:
    other = application_server_key(load_vapid_key(new_vapid_pem().decode()))
    sub = fake_webpush.subscribe(other)
    result = await provider.send([message(sub)])
    assert list(result.failed) == [sub.endpoint]
    assert fake_webpush.errors == [f"{sub.id}: vapid: k is not the key this subscription was made with"]


async def test_a_refused_endpoint_is_dead_and_never_contacted(
    fake_webpush: FakeWebPush, vapid_pem: str, tls_certs: CertPaths
) -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_certs.client_context()))
    provider = WebPushProvider(
        WebPushSettings(vapid_pem=vapid_pem, subject=SUBJECT),
        session,
        refuse_url=lambda url: "the endpoint is not a public address",
    )
    try:
        sub = subscribe(fake_webpush, provider)
        result = await provider.send([message(sub)])
    finally:
        await provider.close()
        await session.close()
    assert result.dead_tokens == [sub.endpoint]
    assert fake_webpush.received == []


async def test_no_connection_is_retried(
    fake_webpush: FakeWebPush, provider: WebPushProvider, tls_certs: CertPaths
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    sub = subscribe(fake_webpush, provider)
    sub.endpoint = f"https://127.0.0.1:{port}/push/{sub.id}"
    result = await provider.send([message(sub)])
    assert result.retry_tokens == [sub.endpoint]


async def test_badge_updates_and_plain_http_are_not_sent(
    fake_webpush: FakeWebPush, provider: WebPushProvider
) -> None:
    sub = subscribe(fake_webpush, provider)
    badge = PushMessage(token=sub.endpoint, push_type="badge", data={}, badge=2, keys=message(sub).keys)
    plain = message(sub)
    plain = PushMessage(**{**plain.__dict__, "token": sub.endpoint.replace("https://", "http://")})
    result = await provider.send([badge, plain])
    assert list(result.failed) == [sub.endpoint]
    assert result.dead_tokens == [plain.token]
    assert fake_webpush.received == []


def test_the_vapid_key_is_made_once_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "vapid.key"
    first = read_or_create_vapid_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_vapid_key(path) == first
    load_vapid_key(first)
    assert [p.name for p in path.parent.iterdir()] == ["vapid.key"]


def test_a_raw_key_from_the_environment_becomes_pem() -> None:
    raw = RFC["as_private"]
    key = load_vapid_key(pem_from_raw(raw))
    assert key.private_numbers().private_value == int.from_bytes(unb64url(raw), "big")
    for bad in ("", "abc", "A" * 43 + "=="):
        with pytest.raises(ValueError):
            pem_from_raw(bad)


def test_settings_refuse_a_bad_subject_or_key(vapid_pem: str) -> None:
    with pytest.raises(ValueError, match="subject"):
        WebPushSettings(vapid_pem=vapid_pem, subject="ops@practice.example")
    with pytest.raises(ValueError, match="PEM"):
        WebPushSettings(vapid_pem="not a key", subject=SUBJECT)
    assert WebPushSettings(vapid_pem=vapid_pem, subject="https://msg.example.org/contact").subject
