"""POST /conversations/{id}/messages looks up who is calling and the conversation in one query
(inbox.sending.read_caller): what a caller is told is the same as on every other call — the token is judged
before the body, the path or the conversation — and a conversation outside the caller's reach is a 404."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.app import make_context
from inbox import accounts
from inbox.models import Message, Participant
from inbox.store import sql
from tests.conftest import Api, Cast, build_cast


async def open_with_client(api: Api, cast: Cast) -> int:
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")]}, token=cast.tok("clinician")
    )
    assert status == 201, conv
    return int(conv["id"])


async def stored() -> int:
    return await Message.all().count()


@pytest.mark.parametrize(
    ("token", "data", "status", "code"),
    [
        (None, "{not json", 401, "unauthenticated"),
        ("forged", "{not json", 401, "invalid_token"),
        ("forged", '{"body": "hi"}', 401, "invalid_token"),
        ("x" * 300, '{"body": "hi"}', 401, "invalid_token"),
        ("api_key", "{not json", 403, "participant_required"),
        ("api_key", '{"body": "hi"}', 403, "participant_required"),
        ("clinician", "{not json", 422, "invalid_json"),
        ("clinician", '{"body": "hi", "colour": "red"}', 422, "unknown_field"),
        ("clinician", '{"body": 5}', 422, "invalid_field"),
    ],
)
async def test_the_token_is_judged_before_the_body(
    api: Api, cast: Cast, token: str | None, data: str, status: int, code: str
) -> None:
    conv = await open_with_client(api, cast)
    before = await stored()
    bearer = cast.tok(token) if token in ("clinician",) else cast.api_key if token == "api_key" else token
    got, body = await api.call("POST", f"/conversations/{conv}/messages", None, bearer, data=data)
    assert (got, body["error"]["code"]) == (status, code), body
    assert await stored() == before


@pytest.mark.parametrize("path_id", ["abc", "0", "99999999999999999999"])
async def test_a_path_that_names_no_conversation_is_404_but_only_for_a_good_token(
    api: Api, cast: Cast, path_id: str
) -> None:
    got, body = await api.post(f"/conversations/{path_id}/messages", {"body": "hi"}, token="forged")
    assert got == 401 and body["error"]["code"] == "invalid_token"
    got, body = await api.post(
        f"/conversations/{path_id}/messages", {"body": "hi"}, token=cast.tok("clinician")
    )
    assert got == 404, body


async def test_a_signed_out_or_expired_token_cannot_send(
    api: Api, cast: Cast, config: Any, clock: Any
) -> None:
    conv = await open_with_client(api, cast)
    got, body = await api.post(
        f"/conversations/{conv}/messages", {"body": "first"}, token=cast.tok("clinician")
    )
    assert got == 201, body
    status, _ = await api.post("/auth/logout", {}, token=cast.tok("clinician"))
    assert status in (200, 204)
    got, body = await api.post(
        f"/conversations/{conv}/messages", {"body": "after"}, token=cast.tok("clinician")
    )
    assert got == 401 and body["error"]["code"] == "invalid_token"

    ctx = make_context(config, clock)
    clinician = await Participant.get(id=cast.id("clinician"))
    short, _ = await accounts.issue_token(ctx, clinician, "app", ttl_s=60)
    got, body = await api.post(f"/conversations/{conv}/messages", {"body": "in time"}, token=short)
    assert got == 201, body
    clock.advance(61)
    got, body = await api.post(f"/conversations/{conv}/messages", {"body": "too late"}, token=short)
    assert got == 401 and body["error"]["code"] == "invalid_token"
    assert [m.client_msg_id for m in await Message.filter(conversation_id=conv)] == [None, None]


async def test_a_conversation_outside_the_callers_reach_is_404_and_nothing_is_stored(
    api: Api, cast: Cast, config: Any, clock: Any
) -> None:
    conv = await open_with_client(api, cast)
    other = await build_cast(api, config, clock, name="Lakeside Therapy")  # another practice
    before = await stored()
    for token in (other.tok("clinician"), other.tok("client"), cast.tok("client2"), cast.tok("clinician2")):
        got, body = await api.post(f"/conversations/{conv}/messages", {"body": "hello?"}, token=token)
        assert got == 404, body
    assert await stored() == before
    got, body = await api.post(f"/conversations/{conv}/messages", {"body": "reply"}, token=cast.tok("client"))
    assert got == 201, body
    assert body["message"]["sender_id"] == cast.id("client")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # counted through SQLite's reader
async def test_a_send_asks_the_database_once_before_writing(api: Api, cast: Cast) -> None:
    """Who is calling and the conversation's members come back together: one read, not two."""
    conv = await open_with_client(api, cast)
    reader = sql.reader_for(sql.client())
    assert reader is not None
    before = reader.inline + reader.units
    got, body = await api.post(
        f"/conversations/{conv}/messages",
        {"body": "one query", "client_msg_id": "m-1"},
        token=cast.tok("clinician"),
    )
    assert got == 201, body
    assert reader.inline + reader.units - before == 1
    # The same client_msg_id again: the first message, never a duplicate.
    got, again = await api.post(
        f"/conversations/{conv}/messages",
        {"body": "one query", "client_msg_id": "m-1"},
        token=cast.tok("clinician"),
    )
    assert got == 200 and again["message"]["id"] == body["message"]["id"]


async def test_a_deactivated_members_token_that_was_not_revoked_cannot_send(api: Api, cast: Cast) -> None:
    """R26: deactivation revokes a person's tokens; should one be missed, the send's own query still refuses
    it (the token holds only while its participant is active), as every other call does."""
    conv = await open_with_client(api, cast)
    await Participant.filter(id=cast.id("clinician")).update(active=False)  # the token itself stays live
    before = await stored()
    got, body = await api.post(f"/conversations/{conv}/messages", {"body": "hi"}, token=cast.tok("clinician"))
    assert got == 401 and body["error"]["code"] == "invalid_token", body
    got, body = await api.get("/me", token=cast.tok("clinician"))
    assert got == 401 and body["error"]["code"] == "invalid_token", body
    assert await stored() == before
