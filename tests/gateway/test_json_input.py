"""JSON that parses but is still no input: a lone surrogate ("\\ud800") in any string, and nesting deep enough
to exhaust the parser (`[` × 100,000). Both used to answer 500; on every JSON route of the API they are a
422 in docs/api.md's error shape, on SQLite and PostgreSQL, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.openapi import document
from inbox.models import Participant
from tests.conftest import Api, Cast

CALLERS = ("api_key", "owner", "clinician", "anonymous")


def json_routes() -> list[tuple[str, str, list[str]]]:
    """(method, path, body fields) of every operation that takes a JSON body."""
    out = []
    for path, ops in document()["paths"].items():
        for method, operation in ops.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            fields = list(content.get("application/json", {}).get("schema", {}).get("properties", {}))
            if fields:
                out.append((method.upper(), path, fields))
    return out


ROUTES = json_routes()


async def _world(api: Api, cast: Cast) -> dict[str, int]:
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")], "body": "hi"}, token=cast.tok("clinician")
    )
    assert status == 201, conv
    status, device = await api.post(
        "/devices", {"platform": "fcm", "token": "d" * 40, "app": "practice"}, token=cast.tok("clinician")
    )
    assert status == 201, device
    return {
        "team-members": cast.id("clinician"),
        "clients": cast.id("client"),
        "conversations": conv["id"],
        "devices": device["id"],
    }


def _url(path: str, ids: dict[str, int]) -> str:
    parts = path.split("/")
    for i, part in enumerate(parts):
        if part == "{id}":
            parts[i] = str(ids[parts[i - 1]])
        elif part == "{member_id}":
            parts[i] = str(ids["team-members"])
    return "/".join(parts)


def _token(cast: Cast, caller: str) -> str | None:
    if caller in ("api_key", "anonymous"):
        return cast.api_key if caller == "api_key" else None
    return cast.tok(caller)


async def _send_raw(api: Api, method: str, url: str, raw: str, token: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    resp = await api.client.request(method, url, data=raw.encode(), headers=headers)
    return resp.status, await resp.json(content_type=None)


async def _answers(
    api: Api, cast: Cast, ids: dict[str, int], method: str, path: str, raw: str
) -> list[tuple[int, Any]]:
    return [await _send_raw(api, method, _url(path, ids), raw, _token(cast, caller)) for caller in CALLERS]


def _assert_refused(answers: list[tuple[int, Any]], code: str) -> None:
    """Nobody gets a 5xx; the callers the route is for get the 422 (the others their 401/403/404)."""
    assert all(status < 500 for status, _ in answers), answers
    refused = [body for status, body in answers if status == 422]
    assert refused, answers
    assert all(set(body) == {"error"} and body["error"]["code"] == code for body in refused), refused


@pytest.mark.parametrize(("method", "path", "fields"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_a_lone_surrogate_in_any_string_field_is_422(
    api: Api, cast: Cast, method: str, path: str, fields: list[str]
) -> None:
    ids = await _world(api, cast)
    before = await Participant.all().count()
    for field in fields:
        # Written out by hand: a JSON encoder would refuse to make this, but anyone can send it.
        for raw in (f'{{"{field}": "a\\ud800b"}}', f'{{"{field}": ["\\udfff"]}}', '{"\\ud800": 1}'):
            _assert_refused(await _answers(api, cast, ids, method, path, raw), "invalid_character")
    assert await Participant.all().count() == before


@pytest.mark.parametrize(("method", "path", "fields"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_deeply_nested_json_is_422(
    api: Api, cast: Cast, method: str, path: str, fields: list[str]
) -> None:
    ids = await _world(api, cast)
    nested: Any = 0
    for _ in range(40):  # parses, but deeper than any request of this API
        nested = [nested]
    for raw in ("[" * 100_000, f'{{"{fields[0]}": ' + "[" * 100_000, json.dumps({fields[0]: nested})):
        _assert_refused(await _answers(api, cast, ids, method, path, raw), "invalid_json")
