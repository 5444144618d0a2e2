"""What the schemathesis run (test_fuzz_schemathesis.py) and the review around it found, one test each.

Every one of these used to answer 5xx: a 503 "storage unavailable" on PostgreSQL, where a number past the
32-bit id columns or a date past year 9999 makes the database refuse the query, or a 500 where Python's
`str.isdigit()` says yes to digits that `int()` then refuses ("²", "٣"). Bad input is a 4xx, on both databases.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.app import make_context
from gateway.auth import PORTAL_COOKIE
from gateway.config import Config
from inbox import accounts
from inbox.clock import FakeClock
from inbox.ids import MAX_ID
from inbox.models import Participant
from tests.conftest import Api, Cast

PAST_ID = MAX_ID + 1  # the first number no row id can be (PostgreSQL's integer is 32 bits)
HUGE = 10**17


def assert_error(status: int, body: Any, expected: int, code: str | None = None) -> None:
    assert status == expected, body
    assert set(body) == {"error"}, body
    if code is not None:
        assert body["error"]["code"] == code, body


async def _conversation(api: Api, cast: Cast) -> tuple[int, int]:
    status, body = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")], "body": "hi"}, token=cast.tok("clinician")
    )
    assert status == 201, body
    return body["id"], body["message"]["id"]


# --- found by schemathesis (PostgreSQL: 503) -------------------------------------------------------------


async def test_chart_notes_cursor_past_32_bits_is_422(api: Api, cast: Cast) -> None:
    # GET /api/v1/clients/8/chart-notes?cursor=7126846882 answered 503.
    status, body = await api.get(
        f"/clients/{cast.id('client')}/chart-notes?cursor=7126846882", token=cast.tok("clinician")
    )
    assert_error(status, body, 422, "invalid_cursor")


async def test_transcript_cursor_past_64_bits_is_422(api: Api, cast: Cast) -> None:
    # A transcript is paged by message id, which is 64-bit.
    status, body = await api.get(
        f"/clients/{cast.id('client')}/transcripts?cursor={2**63}", token=cast.tok("clinician")
    )
    assert_error(status, body, 422, "invalid_cursor")


async def test_audit_cursor_past_32_bits_is_422(api: Api, cast: Cast) -> None:
    # GET /api/v1/audit?...&cursor=507126846882 answered 503.
    status, body = await api.get("/audit?cursor=507126846882", token=cast.tok("owner"))
    assert_error(status, body, 422, "invalid_cursor")


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0048-02-27T21:38:52-19:47"]
)
async def test_audit_since_at_the_edge_of_the_calendar(api: Api, cast: Cast, since: str) -> None:
    # since=0048-02-27T21:38:52-19:47 was found; in UTC the first two fall outside years 1-9999.
    status, body = await api.get("/audit", token=cast.tok("owner"), params={"since": since})
    assert status in (200, 422), body
    if status == 422:
        assert body["error"]["code"] == "invalid_since"


# --- ids that cannot be row ids: 404 or 422, never a database error ------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/conversations/{big}",
        "/conversations/{big}/messages",
        "/clients/{big}",
        "/clients/{big}/transcripts",
        "/clients/{big}/chart-notes",
        "/exports/{big}",
        "/webhooks/{big}/deliveries",
    ],
)
async def test_path_id_past_32_bits_is_404(api: Api, cast: Cast, path: str) -> None:
    token = cast.api_key if path.startswith(("/clients/{big}", "/webhooks")) else cast.tok("owner")
    if "transcripts" in path or "chart-notes" in path:
        token = cast.tok("owner")
    for big in (PAST_ID, HUGE):
        status, body = await api.get(path.format(big=big), token=token)
        assert_error(status, body, 404, "not_found")


async def test_message_remove_with_id_past_32_bits_is_404(api: Api, cast: Cast) -> None:
    status, body = await api.delete(f"/messages/{HUGE}", token=cast.tok("clinician"))
    assert_error(status, body, 404)


async def test_open_conversation_with_participant_id_past_32_bits_is_404(api: Api, cast: Cast) -> None:
    status, body = await api.post(
        "/conversations", {"participant_ids": [cast.id("client"), PAST_ID]}, token=cast.tok("clinician")
    )
    assert_error(status, body, 404, "not_found")


async def test_read_up_to_message_id_past_32_bits_is_404(api: Api, cast: Cast) -> None:
    conv, _ = await _conversation(api, cast)
    status, body = await api.post(
        f"/conversations/{conv}/read", {"up_to_message_id": HUGE}, token=cast.tok("client")
    )
    assert_error(status, body, 404)


async def test_messages_before_past_64_bits_is_422(api: Api, cast: Cast) -> None:
    # Message ids are 64-bit: a `before` past 32 bits is a page (before every message), past 64 bits a 422.
    conv, _ = await _conversation(api, cast)
    status, body = await api.get(f"/conversations/{conv}/messages?before={HUGE}", token=cast.tok("client"))
    assert status == 200 and len(body["items"]) == 1, body
    status, body = await api.get(f"/conversations/{conv}/messages?before={2**63}", token=cast.tok("client"))
    assert_error(status, body, 422, "invalid_query")


async def test_primary_clinician_id_past_32_bits_is_422(api: Api, cast: Cast) -> None:
    status, body = await api.patch(
        f"/clients/{cast.id('client')}", {"primary_clinician_id": HUGE}, token=cast.api_key
    )
    assert_error(status, body, 422, "unknown_clinician")


async def test_export_clinician_id_past_32_bits_is_422(api: Api, cast: Cast) -> None:
    status, body = await api.post(
        "/exports", {"scope": "clinician", "clinician_id": HUGE}, token=cast.tok("owner")
    )
    assert_error(status, body, 422, "unknown_clinician")


@pytest.mark.parametrize("message_id", [PAST_ID, 2**63])
async def test_chart_note_message_id_past_the_column_is_422(api: Api, cast: Cast, message_id: int) -> None:
    status, body = await api.post(
        f"/clients/{cast.id('client')}/chart-notes",
        {"message_ids": [message_id]},
        token=cast.tok("clinician"),
    )
    assert_error(status, body, 422)


@pytest.mark.parametrize(
    "cursor", ["aW5mOjE", "MTAwMDAwMDAwMDAwMDAwMDAwMDA6MQ", "MTcwMDAwMDAwMDo5OTk5OTk5OTk5OTk"]
)
async def test_conversations_cursor_that_decodes_to_nonsense_is_422(
    api: Api, cast: Cast, cursor: str
) -> None:
    # base64 of "inf:1" (OverflowError: 500), "1e20:1" (a year past 9999) and a conversation id past 32 bits.
    status, body = await api.get(f"/conversations?cursor={cursor}", token=cast.tok("clinician"))
    assert_error(status, body, 422, "invalid_cursor")


# --- digits that are not ASCII: str.isdigit() says yes, int() says no ------------------------------------


@pytest.mark.parametrize("digit", ["²", "٣", "١٢"])
async def test_non_ascii_digits_in_a_path_id_are_404(api: Api, cast: Cast, digit: str) -> None:
    status, body = await api.get(f"/conversations/{digit}", token=cast.tok("clinician"))
    assert_error(status, body, 404, "not_found")


@pytest.mark.parametrize("digit", ["²", "٣"])
async def test_non_ascii_digits_in_a_query_number_are_422(api: Api, cast: Cast, digit: str) -> None:
    status, body = await api.get("/recipients", token=cast.tok("clinician"), params={"limit": digit})
    assert_error(status, body, 422, "invalid_query")


async def test_non_ascii_digits_in_transcript_participants_are_422(api: Api, cast: Cast) -> None:
    status, body = await api.get(
        f"/clients/{cast.id('client')}/transcripts",
        token=cast.tok("clinician"),
        params={"participants": "1,²"},
    )
    assert_error(status, body, 422, "invalid_query")


@pytest.mark.parametrize("page", ["/portal/c/{big}", "/portal/c/{conv}?before={big}", "/portal/c/²"])
async def test_portal_ids_past_32_bits_are_not_a_server_error(
    api: Api, cast: Cast, config: Config, clock: FakeClock, page: str
) -> None:
    # The portal pages read ids from the path and the query the same way as the API.
    conv, _ = await _conversation(api, cast)
    client = await Participant.get(id=cast.id("client"))
    session, _ = await accounts.issue_token(make_context(config, clock), client, "session", csrf=True)
    url = page.format(big=HUGE, conv=conv)
    status, _ = await api.get(url, raw=True, cookies={PORTAL_COOKIE: session}, allow_redirects=False)
    assert status == (200 if "before" in page else 404)


# --- U+0000: PostgreSQL cannot store it in text (503 before); refused as input everywhere -----------------


@pytest.mark.parametrize(
    ("method", "path", "body", "who"),
    [
        ("POST", "/clients", {"name": "a\x00b", "email": "nul@example.org"}, "api_key"),
        (
            "POST",
            "/team-members",
            {"name": "a\x00b", "email": "nul@example.org", "roles": ["biller"]},
            "api_key",
        ),
        ("PATCH", "/practice/settings", {"name": "a\x00"}, "api_key"),
        ("PATCH", "/clients/{client}", {"email": "a\x00@example.org"}, "api_key"),
        ("PUT", "/me/away", {"enabled": True, "message": "a\x00b"}, "clinician"),
        ("POST", "/auth/login", {"email": "a\x00@example.org", "password": "0123456789ab"}, None),
        ("POST", "/conversations/{conv}/messages", {"body": "x", "client_msg_id": "a\x00"}, "clinician"),
        ("POST", "/conversations/{conv}/messages", {"body": "hello\x00"}, "clinician"),
        ("POST", "/webhooks", {"url": "https://example.org/\x00", "events": ["message.created"]}, "api_key"),
    ],
)
async def test_nul_character_in_a_json_body_is_422(
    api: Api, cast: Cast, method: str, path: str, body: dict[str, Any], who: str | None
) -> None:
    conv, _ = await _conversation(api, cast)
    token = None if who is None else cast.api_key if who == "api_key" else cast.tok(who)
    url = path.format(client=cast.id("client"), conv=conv)
    status, answer = await api.call(method, url, body, token=token)
    assert_error(status, answer, 422, "invalid_character")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/recipients", {"q": "a\x00"}),
        ("/audit", {"since": "2026-01-01\x00"}),
        ("/conversations", {"cursor": "\x00"}),
    ],
)
async def test_nul_character_in_the_query_is_422(
    api: Api, cast: Cast, path: str, params: dict[str, str]
) -> None:
    status, body = await api.get(path, token=cast.tok("owner"), params=params)
    assert_error(status, body, 422, "invalid_query")


async def test_nul_character_in_a_portal_form_is_refused(api: Api, cast: Cast) -> None:
    status, body = await api.post("/portal/sign-in", raw=True, data={"email": "a\x00@example.org"})
    assert status == 422, body
