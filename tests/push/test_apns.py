"""ApnsProvider against FakeApns: a real HTTP/2 TLS server on loopback."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import hpack
import pytest

from push.apns import ApnsProvider, ApnsSettings, _PlainEncoder, build_payload
from push.base import PushMessage
from tests.fakes.apns import ApnsKey, ApnsReply, FakeApns, make_apns_key
from tests.fakes.certs import CertPaths
from tests.fakes.fixtures import APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC


def token(n: int) -> str:
    return f"{n:064x}"


def new_message(n: int, conversation_id: int = 12, badge: int | None = 3) -> PushMessage:
    return PushMessage(
        token=token(n),
        push_type="new_message",
        data={
            "conversation_id": str(conversation_id),
            "link": f"securemsg://conversations/{conversation_id}",
        },
        badge=badge,
        collapse_key=f"conversation-{conversation_id}",
        title="New secure message",
    )


@pytest.fixture
def apns_settings(fake_apns: FakeApns, apns_key: ApnsKey) -> ApnsSettings:
    return ApnsSettings(
        key_pem=apns_key.private_pem,
        key_id=APNS_KEY_ID,
        team_id=APNS_TEAM_ID,
        topic=APNS_TOPIC,
        endpoint=fake_apns.url,
        timeout_s=2,
    )


@asynccontextmanager
async def provider_for(settings: ApnsSettings, certs: CertPaths | None) -> AsyncIterator[ApnsProvider]:
    provider = ApnsProvider(settings, ssl_context=certs.client_context() if certs else None)
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture
async def apns(apns_settings: ApnsSettings, tls_certs: CertPaths) -> AsyncIterator[ApnsProvider]:
    async with provider_for(apns_settings, tls_certs) as provider:
        yield provider


async def test_new_message_push_reaches_apns_with_topic_collapse_id_badge_link_and_valid_jwt(
    apns: ApnsProvider, fake_apns: FakeApns
) -> None:
    result = await apns.send([new_message(1)])

    assert result.delivered == [token(1)]
    assert (result.dead_tokens, result.retry_tokens, result.failed, result.retry_after) == ([], [], {}, None)
    [request] = fake_apns.received
    assert request.alpn == "h2"
    assert request.method == "POST"
    assert request.path == f"/3/device/{token(1)}"
    assert request.headers["apns-topic"] == APNS_TOPIC
    assert request.headers["apns-collapse-id"] == "conversation-12"
    assert request.headers["apns-push-type"] == "alert"
    assert request.headers["apns-priority"] == "10"
    assert request.jwt_ok, request.jwt_error
    assert request.jwt_header["alg"] == "ES256"
    assert request.jwt_header["kid"] == APNS_KEY_ID
    assert request.jwt_claims["iss"] == APNS_TEAM_ID
    assert request.body == {
        "aps": {"alert": {"title": "New secure message"}, "badge": 3, "sound": "default"},
        "conversation_id": "12",
        "link": "securemsg://conversations/12",
        "type": "new_message",
    }


async def test_appointment_push_carries_type_appointment_id_and_link(
    apns: ApnsProvider, fake_apns: FakeApns
) -> None:
    msg = PushMessage(
        token=token(2),
        push_type="appointment_alert",
        data={"appointment_id": "7", "link": "securemsg://appointments/7"},
        badge=0,
        collapse_key="appointment-7",
        title="Appointment reminder",
    )
    result = await apns.send([msg])

    assert result.delivered == [token(2)]
    [request] = fake_apns.received
    assert request.headers["apns-collapse-id"] == "appointment-7"
    assert request.body == {
        "aps": {"alert": {"title": "Appointment reminder"}, "badge": 0, "sound": "default"},
        "appointment_id": "7",
        "link": "securemsg://appointments/7",
        "type": "appointment_alert",
    }


async def test_badge_update_is_silent_alert_type_at_low_priority(
    apns: ApnsProvider, fake_apns: FakeApns
) -> None:
    result = await apns.send([PushMessage(token=token(3), push_type="badge", data={}, badge=4)])

    assert result.delivered == [token(3)]
    [request] = fake_apns.received
    assert request.body == {"aps": {"badge": 4}, "type": "badge"}
    assert request.headers["apns-push-type"] == "alert"
    assert request.headers["apns-priority"] == "5"
    assert "apns-collapse-id" not in request.headers


async def test_410_unregistered_and_400_bad_device_token_are_dead(
    apns: ApnsProvider, fake_apns: FakeApns
) -> None:
    fake_apns.reply_to(token(1), ApnsReply.unregistered())
    fake_apns.reply_to(token(2), ApnsReply.bad_device_token())
    fake_apns.reply_to(token(3), ApnsReply(400, "DeviceTokenNotForTopic"))
    fake_apns.reply_to(token(4), ApnsReply(400, "TopicDisallowed"))

    result = await apns.send([new_message(n) for n in range(1, 6)])

    assert sorted(result.dead_tokens) == [token(1), token(2), token(3), token(4)]
    assert result.delivered == [token(5)]
    assert result.retry_tokens == [] and result.failed == {}


async def test_429_is_retried_with_the_servers_retry_after(apns: ApnsProvider, fake_apns: FakeApns) -> None:
    fake_apns.reply_to(token(1), ApnsReply.too_many_requests(retry_after=42))

    result = await apns.send([new_message(1), new_message(2)])

    assert result.retry_tokens == [token(1)]
    assert result.retry_after == 42
    assert result.delivered == [token(2)]


async def test_429_without_retry_after_leaves_the_backoff_to_the_dispatcher(
    apns: ApnsProvider, fake_apns: FakeApns
) -> None:
    fake_apns.reply_all(ApnsReply.too_many_requests(retry_after=None))

    result = await apns.send([new_message(1)])

    assert result.retry_tokens == [token(1)]
    assert result.retry_after is None


async def test_503_is_retried(apns: ApnsProvider, fake_apns: FakeApns) -> None:
    fake_apns.reply_all(ApnsReply.service_unavailable())

    result = await apns.send([new_message(1)])

    assert result.retry_tokens == [token(1)] and result.dead_tokens == [] and result.failed == {}


async def test_other_rejections_fail_for_good(apns: ApnsProvider, fake_apns: FakeApns) -> None:
    fake_apns.reply_all(ApnsReply(413, "PayloadTooLarge"))

    result = await apns.send([new_message(1)])

    assert result.failed == {token(1): "413 PayloadTooLarge"}


async def test_stalled_answer_is_retried_after_the_timeout_and_frees_its_stream(
    apns_settings: ApnsSettings, tls_certs: CertPaths, fake_apns: FakeApns
) -> None:
    fake_apns.reply_to(token(1), ApnsReply.stalled())
    async with provider_for(dataclasses.replace(apns_settings, timeout_s=0.3), tls_certs) as apns:
        started = time.monotonic()
        result = await apns.send([new_message(1), new_message(2)])
        elapsed = time.monotonic() - started

        assert result.retry_tokens == [token(1)]
        assert result.delivered == [token(2)]
        assert 0.25 <= elapsed < 1.5
        await fake_apns.wait_until(lambda: fake_apns.resets == 1)
        assert fake_apns.in_flight == 0
        # The connection is still good for the next push.
        assert (await apns.send([new_message(3)])).delivered == [token(3)]
        assert len(fake_apns.alpn_protocols) == 1


async def test_a_slow_answer_after_the_timeout_does_not_disturb_the_connection(
    apns_settings: ApnsSettings, tls_certs: CertPaths, fake_apns: FakeApns
) -> None:
    fake_apns.reply_to(token(1), ApnsReply.ok(delay=0.4))
    async with provider_for(dataclasses.replace(apns_settings, timeout_s=0.2), tls_certs) as apns:
        assert (await apns.send([new_message(1)])).retry_tokens == [token(1)]
        # Both ends got over the abandoned stream: the next push goes through on the same connection.
        result = await apns.send([new_message(2)])
        assert result.delivered == [token(2)]
        assert len(fake_apns.alpn_protocols) == 1


async def test_a_key_apns_does_not_know_gets_403_and_fails(
    apns_settings: ApnsSettings, tls_certs: CertPaths, fake_apns: FakeApns
) -> None:
    other_key = make_apns_key()
    async with provider_for(
        dataclasses.replace(apns_settings, key_pem=other_key.private_pem), tls_certs
    ) as apns:
        result = await apns.send([new_message(1)])

    assert result.failed == {token(1): "403 InvalidProviderToken"}
    assert fake_apns.auth_failures == 1
    assert fake_apns.received[0].jwt_error is not None


async def test_payload_holds_only_what_data_held(apns: ApnsProvider, fake_apns: FakeApns) -> None:
    """Canary: the provider adds nothing but aps, the generic title and type to what the caller gave."""
    data = {"conversation_id": "canary-id-31337", "link": "securemsg://conversations/canary-id-31337"}
    msg = PushMessage(token(9), "new_message", data, badge=2, collapse_key="conversation-canary", title=None)

    await apns.send([msg])

    [request] = fake_apns.received
    body = request.body
    assert {k: v for k, v in body.items() if k not in ("aps", "type")} == data
    assert body["type"] == "new_message"
    assert body["aps"] == {"alert": {"title": "New secure message"}, "badge": 2, "sound": "default"}
    assert strings_in(body) <= {*data, *data.values(), "aps", "alert", "title", "badge", "sound", "type"} | {
        "New secure message",
        "default",
        "new_message",
    }


def strings_in(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {s for v in value.values() for s in strings_in(v)}
    if isinstance(value, list):
        return {s for v in value for s in strings_in(v)}
    return {value} if isinstance(value, str) else set()


async def test_requests_in_flight_never_exceed_the_cap(
    apns_settings: ApnsSettings, tls_certs: CertPaths, fake_apns: FakeApns
) -> None:
    fake_apns.reply_all(ApnsReply.ok(delay=0.05))
    async with provider_for(dataclasses.replace(apns_settings, max_in_flight=3), tls_certs) as apns:
        result = await apns.send([new_message(n) for n in range(12)])

    assert len(result.delivered) == 12
    assert fake_apns.max_concurrent == 3


async def test_connection_refused_is_retried(apns_settings: ApnsSettings, tls_certs: CertPaths) -> None:
    with closed_port() as port:
        settings = dataclasses.replace(apns_settings, endpoint=f"https://127.0.0.1:{port}", timeout_s=0.3)
        async with provider_for(settings, tls_certs) as apns:
            result = await apns.send([new_message(1)])

    assert result.retry_tokens == [token(1)]


class closed_port:
    """A loopback port nobody listens on (bound, never listening, so nothing else takes it)."""

    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


async def test_tls_trust_follows_ssl_cert_file(
    apns_settings: ApnsSettings, tls_certs: CertPaths, fake_apns: FakeApns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_cert))
    async with provider_for(apns_settings, None) as apns:
        result = await apns.send([new_message(1)])

    assert result.delivered == [token(1)]


async def test_an_untrusted_server_is_not_sent_to(
    apns_settings: ApnsSettings, fake_apns: FakeApns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    async with provider_for(dataclasses.replace(apns_settings, timeout_s=0.3), None) as apns:
        result = await apns.send([new_message(1)])

    assert result.retry_tokens == [token(1)]
    assert fake_apns.received == []


async def test_malformed_messages_are_sorted_without_a_request(
    apns: ApnsProvider, fake_apns: FakeApns
) -> None:
    batch = [
        PushMessage("not-hex!", "new_message", {}),
        PushMessage(token(1), "carrier_pigeon", {}),
        PushMessage(token(2), "badge", {}),
        PushMessage(token(3), "new_message", {"aps": "x"}),
        PushMessage(token(4), "new_message", {"conversation_id": 12}),  # type: ignore[dict-item]
    ]

    result = await apns.send(batch)

    assert result.dead_tokens == ["not-hex!"]
    assert set(result.failed) == {token(1), token(2), token(3), token(4)}
    assert fake_apns.received == []


def test_settings_refuse_bad_values(apns_key: ApnsKey) -> None:
    good: dict[str, Any] = {"key_pem": apns_key.private_pem, "key_id": "K", "team_id": "T", "topic": "org.x"}
    ApnsSettings(**good)
    with pytest.raises(ValueError, match="PEM"):
        ApnsSettings(**{**good, "key_pem": "/etc/apns/AuthKey.p8"})
    with pytest.raises(ValueError, match="endpoint"):
        ApnsSettings(**good, endpoint="http://api.push.apple.com")
    with pytest.raises(ValueError, match="port"):
        ApnsSettings(**good, endpoint="https://127.0.0.1:99999")
    with pytest.raises(ValueError, match="timeout"):
        ApnsSettings(**good, timeout_s=0)
    assert apns_key.private_pem not in repr(ApnsSettings(**good))


def test_settings_read_the_key_file(apns_key: ApnsKey, tmp_path: Any) -> None:
    key_file = tmp_path / "AuthKey_K.p8"
    key_file.write_text(apns_key.private_pem)

    settings = ApnsSettings.from_key_file(key_file, key_id="K", team_id="T", topic="org.x")

    assert settings.key_pem == apns_key.private_pem
    assert (settings.host, settings.port) == ("api.push.apple.com", 443)


def test_provider_refuses_to_be_built_outside_a_running_loop(apns_key: ApnsKey) -> None:
    settings = ApnsSettings(key_pem=apns_key.private_pem, key_id="K", team_id="T", topic="org.x")
    with pytest.raises(RuntimeError):
        ApnsProvider(settings)


async def test_a_burst_bigger_than_the_flow_control_window_waits_for_it_instead_of_failing(
    apns_settings: ApnsSettings, fake_apns: FakeApns, tls_certs: CertPaths
) -> None:
    # 800 pushes of ~1 KB in flight at once are far more than the 64 KiB the connection may send before
    # the server's WINDOW_UPDATE. aioapns alone raised FlowControlError (leaving the stream half-open),
    # retried a second later and gave up ("Failed to send after 2 attempts"); now the pushes wait for the
    # window, in order.
    settings = dataclasses.replace(apns_settings, max_in_flight=800, timeout_s=20)
    batch = [
        dataclasses.replace(m, data={**m.data, "ref": "r" * 800})
        for m in (new_message(n) for n in range(800))
    ]
    assert sum(len(json.dumps(build_payload(m))) for m in batch) > 10 * 65535
    async with provider_for(settings, tls_certs) as provider:
        assert (await provider.send([new_message(9999)])).delivered  # connected: the burst goes out at once
        started = time.monotonic()
        result = await provider.send(batch)
        elapsed = time.monotonic() - started
    assert sorted(result.delivered) == sorted(token(n) for n in range(800))
    assert not result.retry_tokens and not result.failed
    assert len(fake_apns.received) == 801 and len(fake_apns.alpn_protocols) == 1  # one connection
    assert fake_apns.in_flight == 0  # no stream left half-open
    assert elapsed < 10  # no second-long back-off in the way


async def test_the_fake_takes_its_full_stream_limit_from_the_first_request(
    fake_apns: FakeApns, tls_certs: CertPaths, apns_key: ApnsKey
) -> None:
    """A raw h2 client opens 300 streams before it has read the server's SETTINGS: allowed, since the fake
    advertises 1,000 in its first SETTINGS frame and enforces that from the start."""
    import asyncio

    import h2.config
    import h2.connection
    import h2.events
    import jwt

    ctx = tls_certs.client_context()
    ctx.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection("127.0.0.1", fake_apns.port, ssl=ctx)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    bearer = jwt.encode(
        {"iss": APNS_TEAM_ID, "iat": int(time.time())}, apns_key.private_pem, "ES256", {"kid": APNS_KEY_ID}
    )
    body = json.dumps({"aps": {"alert": {"title": "t"}}}).encode()
    for n in range(300):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(
            sid,
            [(":method", "POST"), (":scheme", "https"), (":authority", "127.0.0.1"),
             (":path", f"/3/device/{token(n)}"), ("authorization", f"bearer {bearer}"),
             ("apns-topic", APNS_TOPIC)],
        )  # fmt: skip
        conn.send_data(sid, body, end_stream=True)
    writer.write(conn.data_to_send())
    ended, terminated = 0, False
    async with asyncio.timeout(10):
        while ended < 300 and not terminated:
            data = await reader.read(65536)
            assert data, "the fake closed the connection"
            for event in conn.receive_data(data):
                ended += isinstance(event, h2.events.StreamEnded)
                terminated |= isinstance(event, h2.events.ConnectionTerminated)
            writer.write(conn.data_to_send())
    writer.close()
    assert (ended, terminated) == (300, False)
    assert conn.remote_settings.max_concurrent_streams == 1000


def test_header_blocks_decode_to_the_same_headers_and_keep_the_token_out_of_the_table() -> None:
    """The provider's HPACK encoder skips Huffman coding only: same headers, authorization never indexed."""
    headers = [
        (b":method", b"POST"),
        (b":path", b"/3/device/" + token(1).encode()),
        (b"apns-collapse-id", b"conversation-12"),
        hpack.NeverIndexedHeaderTuple(b"authorization", b"bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln"),
    ]
    encoder, decoder = _PlainEncoder(), hpack.Decoder()
    for _ in range(2):
        block = encoder.encode(headers)
        assert b"bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln" in block  # a plain literal, sent in full every time
        decoded = decoder.decode(block, raw=True)
        assert [tuple(h) for h in decoded] == [tuple(h) for h in headers]
        assert not decoded[-1].indexable
