"""FcmProvider against FakeFcm: a real aiohttp server on loopback playing FCM v1 and Google's token endpoint.

The fake's token endpoint is served by the test's own event loop, so every test here that fetches a token
would deadlock if the provider refreshed on the loop instead of in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from push import build_providers
from push.apns import ApnsSettings
from push.base import PushMessage
from push.fcm import FcmProvider, FcmSettings
from tests.fakes.apns import ApnsKey
from tests.fakes.fcm import FakeFcm, FcmReply


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_message(n: int, conversation_id: int = 12, badge: int | None = 3) -> PushMessage:
    return PushMessage(
        token=f"fcm-token-{n}",
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
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fcm_settings(fake_fcm: FakeFcm, fcm_credentials_file: Path) -> FcmSettings:
    return FcmSettings(credentials_file=str(fcm_credentials_file), endpoint=fake_fcm.url, timeout_s=2)


@asynccontextmanager
async def provider_for(settings: FcmSettings, clock: FakeClock | None = None) -> AsyncIterator[FcmProvider]:
    provider = FcmProvider(settings, clock=clock or FakeClock())
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture
async def fcm(fcm_settings: FcmSettings, clock: FakeClock) -> AsyncIterator[FcmProvider]:
    async with provider_for(fcm_settings, clock) as provider:
        yield provider


async def test_new_message_push_is_posted_with_a_bearer_token_and_string_data(
    fcm: FcmProvider, fake_fcm: FakeFcm
) -> None:
    result = await fcm.send([new_message(1)])

    assert result.delivered == ["fcm-token-1"]
    assert (result.dead_tokens, result.retry_tokens, result.failed, result.retry_after) == ([], [], {}, None)
    [request] = fake_fcm.received
    assert request.project == fake_fcm.project_id
    assert request.authorized and request.access_token == fake_fcm.issued_tokens[0]
    assert request.body == {
        "message": {
            "token": "fcm-token-1",
            "data": {
                "conversation_id": "12",
                "link": "securemsg://conversations/12",
                "type": "new_message",
                "badge": "3",
            },
            "notification": {"title": "New secure message"},
            "android": {
                "priority": "high",
                "collapse_key": "conversation-12",
                "notification": {"tag": "conversation-12"},
            },
        }
    }
    [grant] = fake_fcm.token_requests
    assert grant.error is None
    assert grant.claims["aud"] == "https://oauth2.googleapis.com/token"  # google-auth's fixed audience
    assert grant.claims["iss"] == fake_fcm.client_email
    assert grant.claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"


async def test_appointment_push_carries_type_appointment_id_and_link(
    fcm: FcmProvider, fake_fcm: FakeFcm
) -> None:
    msg = PushMessage(
        token="fcm-token-2",
        push_type="video_appointment",
        data={"appointment_id": "7", "link": "securemsg://appointments/7"},
        collapse_key="appointment-7",
        title="Video appointment",
    )
    assert (await fcm.send([msg])).delivered == ["fcm-token-2"]

    message = fake_fcm.received[0].message
    assert message["data"] == {
        "appointment_id": "7",
        "link": "securemsg://appointments/7",
        "type": "video_appointment",
    }
    assert message["notification"] == {"title": "Video appointment"}


async def test_badge_update_is_data_only(fcm: FcmProvider, fake_fcm: FakeFcm) -> None:
    result = await fcm.send([PushMessage(token="fcm-token-3", push_type="badge", data={}, badge=4)])

    assert result.delivered == ["fcm-token-3"]
    message = fake_fcm.received[0].message
    assert message == {
        "token": "fcm-token-3",
        "data": {"type": "badge", "badge": "4"},
        "android": {"priority": "normal"},
    }


async def test_access_token_is_fetched_once_for_many_pushes(fcm: FcmProvider, fake_fcm: FakeFcm) -> None:
    first = await fcm.send([new_message(n) for n in range(20)])  # twenty at once: one refresh
    second = await fcm.send([new_message(n) for n in range(20, 25)])

    assert len(first.delivered) == 20 and len(second.delivered) == 5
    assert fake_fcm.token_request_count == 1
    assert {r.access_token for r in fake_fcm.received} == {fake_fcm.issued_tokens[0]}


async def test_access_token_is_refreshed_when_it_nears_expiry(
    fcm: FcmProvider, fake_fcm: FakeFcm, clock: FakeClock
) -> None:
    await fcm.send([new_message(1)])
    clock.advance(fake_fcm.token_lifetime - 120)  # still comfortably valid
    await fcm.send([new_message(2)])
    assert fake_fcm.token_request_count == 1

    clock.advance(90)  # within a minute of expiry
    result = await fcm.send([new_message(3)])

    assert result.delivered == ["fcm-token-3"]
    assert fake_fcm.token_request_count == 2
    assert fake_fcm.received[-1].access_token == fake_fcm.issued_tokens[1]


async def test_401_refreshes_the_token_once_and_resends(fcm: FcmProvider, fake_fcm: FakeFcm) -> None:
    await fcm.send([new_message(1)])
    fake_fcm.revoke_tokens()

    result = await fcm.send([new_message(n) for n in range(2, 7)])

    assert sorted(result.delivered) == [f"fcm-token-{n}" for n in range(2, 7)]
    assert fake_fcm.token_request_count == 2  # five 401s, one refresh
    assert sum(not r.authorized for r in fake_fcm.received) == 5


async def test_401_with_a_fresh_token_fails_after_one_refresh(fcm: FcmProvider, fake_fcm: FakeFcm) -> None:
    fake_fcm.reply_all(FcmReply(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}))

    result = await fcm.send([new_message(1)])

    assert list(result.failed) == ["fcm-token-1"]
    assert fake_fcm.token_request_count == 2
    assert len(fake_fcm.received) == 2


async def test_unregistered_and_invalid_token_are_dead(fcm: FcmProvider, fake_fcm: FakeFcm) -> None:
    fake_fcm.reply_to("fcm-token-1", FcmReply.unregistered())
    fake_fcm.reply_to("fcm-token-2", FcmReply.invalid_token())
    fake_fcm.reply_to("fcm-token-3", FcmReply(404, {"error": {"code": 404, "status": "NOT_FOUND"}}))

    result = await fcm.send([new_message(n) for n in range(1, 5)])

    assert sorted(result.dead_tokens) == ["fcm-token-1", "fcm-token-2", "fcm-token-3"]
    assert result.delivered == ["fcm-token-4"]


async def test_invalid_argument_about_the_payload_is_not_a_dead_token(
    fcm: FcmProvider, fake_fcm: FakeFcm
) -> None:
    fake_fcm.reply_all(FcmReply.invalid_payload("message.android.collapse_key"))

    result = await fcm.send([new_message(1)])

    assert result.dead_tokens == []
    assert "INVALID_ARGUMENT" in result.failed["fcm-token-1"]


async def test_sender_id_mismatch_fails_for_good(fcm: FcmProvider, fake_fcm: FakeFcm) -> None:
    fake_fcm.reply_all(FcmReply.sender_id_mismatch())

    result = await fcm.send([new_message(1)])

    assert result.failed == {"fcm-token-1": "403 SENDER_ID_MISMATCH: SenderId mismatch"}


async def test_429_is_retried_with_retry_after_and_500_is_retried(
    fcm: FcmProvider, fake_fcm: FakeFcm
) -> None:
    fake_fcm.reply_to("fcm-token-1", FcmReply.too_many_requests(retry_after=17))
    fake_fcm.reply_to("fcm-token-2", FcmReply.internal_error())

    result = await fcm.send([new_message(n) for n in range(1, 4)])

    assert sorted(result.retry_tokens) == ["fcm-token-1", "fcm-token-2"]
    assert result.retry_after == 17
    assert result.delivered == ["fcm-token-3"]


async def test_stalled_answer_is_retried_after_the_timeout(
    fcm_settings: FcmSettings, fake_fcm: FakeFcm, clock: FakeClock
) -> None:
    fake_fcm.reply_to("fcm-token-1", FcmReply.stalled())
    async with provider_for(dataclasses.replace(fcm_settings, timeout_s=0.3), clock) as fcm:
        started = time.monotonic()
        result = await fcm.send([new_message(1), new_message(2)])

    assert 0.25 <= time.monotonic() - started < 1.5
    assert result.retry_tokens == ["fcm-token-1"]
    assert result.delivered == ["fcm-token-2"]


async def test_connection_refused_is_retried(fcm_settings: FcmSettings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with provider_for(dataclasses.replace(fcm_settings, endpoint=endpoint)) as fcm:
            result = await fcm.send([new_message(1)])

    assert result.retry_tokens == ["fcm-token-1"]


async def test_a_refused_grant_fails_and_an_unreachable_token_endpoint_is_retried(
    fcm_settings: FcmSettings, fake_fcm: FakeFcm, tmp_path: Path
) -> None:
    fake_fcm.token_error = (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    async with provider_for(fcm_settings) as fcm:
        refused = await fcm.send([new_message(1)])
    assert "invalid_grant" in refused.failed["fcm-token-1"]

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_uri = f"http://127.0.0.1:{sock.getsockname()[1]}/token"
        other = tmp_path / "elsewhere"
        other.mkdir()
        settings = dataclasses.replace(
            fcm_settings, credentials_file=str(fake_fcm.write_service_account(other, dead_uri))
        )
        async with provider_for(settings) as fcm:
            unreachable = await fcm.send([new_message(2)])
    assert unreachable.retry_tokens == ["fcm-token-2"]
    assert fake_fcm.received == []


async def test_payload_holds_only_what_data_held(fcm: FcmProvider, fake_fcm: FakeFcm) -> None:
    """Canary: besides routing fields, the provider adds only type, badge and the generic title."""
    data = {"conversation_id": "canary-id-31337", "link": "securemsg://conversations/canary-id-31337"}
    await fcm.send([PushMessage("fcm-token-9", "new_message", data, badge=2, title=None)])

    message = fake_fcm.received[0].message
    assert message["data"] == {**data, "type": "new_message", "badge": "2"}
    assert message["notification"] == {"title": "New secure message"}
    assert set(message) == {"token", "data", "notification", "android"}
    assert message["android"] == {"priority": "high"}
    raw = json.dumps(fake_fcm.received[0].body)
    for value in data.values():
        raw = raw.replace(value, "")
    assert "canary" not in raw


async def test_requests_in_flight_never_exceed_the_cap(fcm_settings: FcmSettings, fake_fcm: FakeFcm) -> None:
    fake_fcm.reply_all(FcmReply.ok(delay=0.05))
    async with provider_for(dataclasses.replace(fcm_settings, max_in_flight=3)) as fcm:
        result = await fcm.send([new_message(n) for n in range(12)])

    assert len(result.delivered) == 12
    assert fake_fcm.max_concurrent == 3


async def test_malformed_messages_fail_without_a_request(fcm: FcmProvider, fake_fcm: FakeFcm) -> None:
    batch = [
        PushMessage("", "new_message", {}),
        PushMessage("fcm-token-1", "new_message", {"conversation_id": 12}),  # type: ignore[dict-item]
        PushMessage("fcm-token-2", "new_message", {"google.sent_time": "1"}),
        PushMessage("fcm-token-3", "badge", {}),
    ]

    result = await fcm.send(batch)

    assert result.dead_tokens == [""]
    assert set(result.failed) == {"fcm-token-1", "fcm-token-2", "fcm-token-3"}
    assert fake_fcm.received == []


async def test_a_session_passed_in_is_left_open(fcm_settings: FcmSettings, fake_fcm: FakeFcm) -> None:
    async with aiohttp.ClientSession() as session:
        provider = FcmProvider(fcm_settings, session)
        assert (await provider.send([new_message(1)])).delivered == ["fcm-token-1"]
        await provider.close()
        assert not session.closed


async def test_bad_credentials_file_stops_the_start(tmp_path: Path, fake_fcm: FakeFcm) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ValueError, match="not found"):
        FcmSettings(credentials_file=str(missing))
    garbage = tmp_path / "garbage.json"
    garbage.write_text(json.dumps({"type": "service_account", "project_id": "p"}))
    with pytest.raises(ValueError, match="service-account"):
        FcmProvider(FcmSettings(credentials_file=str(garbage)))


async def test_build_providers_turns_on_only_what_is_configured(
    fcm_settings: FcmSettings, apns_key: ApnsKey
) -> None:
    apns_settings = ApnsSettings(key_pem=apns_key.private_pem, key_id="K", team_id="T", topic="org.x")

    assert build_providers(None, None) == {}
    providers = build_providers(apns_settings, fcm_settings)
    try:
        assert sorted(providers) == ["apns", "fcm"]
        assert {name: p.name for name, p in providers.items()} == {"apns": "apns", "fcm": "fcm"}
    finally:
        await asyncio.gather(*(p.close() for p in providers.values()))
    only_fcm = build_providers(None, fcm_settings)
    assert list(only_fcm) == ["fcm"]
    await only_fcm["fcm"].close()


def test_build_providers_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        build_providers(None, None)
