"""The typed boundary (gateway/typed.py, gateway/routing.py): a body's errors are the API's own codes
whichever way the body was read, no API route exists without its OpenAPI operation, and the tests' own
check of every answer against the document (tests/openapi_check.py) does fail on a drift."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from gateway.routing import check_described
from tests.conftest import Api, Cast
from tests.openapi_check import check_answer


async def _raw(api: Api, method: str, path: str, raw: bytes, token: str) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    resp = await api.client.request(method, path, data=raw, headers=headers)
    return resp.status, await resp.json()


async def test_a_send_body_is_refused_with_the_apis_codes(api: Api, cast: Cast) -> None:
    token = cast.tok("clinician")
    status, conv = await api.post("/conversations", {"participant_ids": [cast.id("client")]}, token=token)
    assert status == 201, conv
    path = f"/api/v1/conversations/{conv['id']}/messages"
    cases = [
        # Parsed in one go by pydantic, then looked through: U+0000 is refused all the same.
        (b'{"body": "a\\u0000b"}', 422, "invalid_character", "body"),
        (b'{"body": "hi", "client_msg_id": 5}', 422, "invalid_field", "client_msg_id"),
        (b'{"body": true}', 422, "invalid_field", "body"),
        (b"{}", 422, "missing_field", "body"),
        (b"", 422, "missing_field", "body"),
        # Unknown fields come first, the first by name, whatever else is wrong.
        (b'{"zeta": 1, "alpha": 2, "body": 5}', 422, "unknown_field", "alpha"),
        (b'{"body": "a\\ud800"}', 422, "invalid_character", "body"),
    ]
    for raw, status, code, field in cases:
        got, answer = await _raw(api, "POST", path, raw, token)
        assert (got, answer["error"]["code"], answer["error"].get("field")) == (status, code, field), raw
    status, page = await api.get(f"/conversations/{conv['id']}/messages", token=token)
    assert status == 200 and page["items"] == []


async def test_lists_and_numbers_keep_their_bounds(api: Api, cast: Cast) -> None:
    token = cast.tok("clinician")
    status, answer = await api.post("/conversations", {"participant_ids": list(range(1, 60))}, token=token)
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (
        413,
        "too_many_items",
        "participant_ids",
    )
    status, answer = await api.post("/conversations", {"participant_ids": [1, "2"]}, token=token)
    assert (status, answer["error"]["code"], answer["error"]["message"]) == (
        422,
        "invalid_field",
        "participant_ids must be a list of whole numbers.",
    )
    status, answer = await api.post("/conversations/1/read", {"up_to_message_id": 2**63}, token=token)
    assert (status, answer["error"]["code"], answer["error"]["message"]) == (
        422,
        "invalid_field",
        "up_to_message_id is out of range.",
    )


async def test_r25_a_password_in_a_team_member_change_is_refused_before_its_other_faults(
    api: Api, cast: Cast
) -> None:
    path = f"/team-members/{cast.id('clinician')}"
    status, answer = await api.patch(path, {"password": 5, "name": 7}, token=cast.api_key)
    assert (status, answer["error"]["code"]) == (403, "password_is_personal")
    status, answer = await api.patch(path, {"password": "x" * 12, "colour": "red"}, token=cast.api_key)
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (422, "unknown_field", "colour")
    status, member = await api.get("/team-members", token=cast.api_key)
    assert status == 200 and "Clinician" in {m["name"] for m in member["items"]}


def test_an_api_route_without_its_operation_stops_the_start() -> None:
    async def undescribed(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/api/v1/undescribed", undescribed)
    with pytest.raises(RuntimeError, match="GET /api/v1/undescribed has no @operation"):
        check_described(app)


def test_the_answer_check_fails_on_an_undocumented_status_or_shape() -> None:
    good = {
        "participant": {"id": 1, "name": "A", "kind": "team", "roles": [], "away": False, "email": "a@b.c"}
    }
    good |= {"unread_total": 0, "away": {"enabled": False, "message": "Away."}}
    assert check_answer("GET", "/api/v1/me", 200, "application/json", good) is None
    assert "does not document" in (check_answer("GET", "/api/v1/me", 418, "application/json", {}) or "")
    wrong = check_answer("GET", "/api/v1/me", 200, "application/json", {**good, "unread_total": "0"})
    assert wrong is not None and "unread_total" in wrong
    extra = check_answer("GET", "/api/v1/me", 200, "application/json", {**good, "secret": 1})
    assert extra is not None and "secret" in extra
    error = {"error": {"code": "not_found", "message": "No such conversation."}}
    assert check_answer("GET", "/api/v1/conversations/7", 404, "application/json", error) is None
    assert check_answer("GET", "/api/v1/no-such-thing", 404, "application/json", error) is None
