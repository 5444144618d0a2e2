"""R27 across real processes: a socket held by gateway A closes with 4401 within two seconds when the
access behind it ends through gateway B (two `securemsg serve --no-worker` on one PostgreSQL and one
Redis), and a message sent through B right after the change never reaches it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import aiohttp
import pytest

from tests.scale.test_multiprocess import Proc, cli, gateways, scale_env  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

ACCESS_ENDED = 4401
PASSWORD = "colleague password"


async def practice(http: aiohttp.ClientSession, env: dict[str, str], a: Proc) -> dict[str, Any]:
    """A practice with an owner and a colleague, both signed in (through A); their tokens and ids."""
    owner_email = f"o-{uuid.uuid4().hex[:6]}@scale.example"
    made = json.loads(
        await cli(env, "create-practice", "--name", "R27 Clinic", "--owner-name", "Owner",
                  "--owner-email", owner_email, "--owner-password", PASSWORD)
    )  # fmt: skip
    key = {"Authorization": f"Bearer {made['api_key']}"}
    email = f"c-{uuid.uuid4().hex[:6]}@scale.example"
    body = {"name": "Colleague", "email": email, "roles": ["clinician"], "password": PASSWORD}
    async with http.post(a.url + "/api/v1/team-members", json=body, headers=key) as resp:
        assert resp.status == 201
        colleague = await resp.json()
    tokens = {}
    for who, address in (("owner", owner_email), ("colleague", email)):
        async with http.post(
            a.url + "/api/v1/auth/login", json={"email": address, "password": PASSWORD}
        ) as r:
            assert r.status == 200
            tokens[who] = (await r.json())["token"]
    return {"key": key, "colleague_id": colleague["id"], "tokens": tokens}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def send(http: aiohttp.ClientSession, url: str, token: str, conv_id: int, body: str) -> int:
    async with http.post(
        f"{url}/api/v1/conversations/{conv_id}/messages", json={"body": body}, headers=bearer(token)
    ) as resp:
        return resp.status


async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str, list[str]]:
    bodies = []
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.TEXT:
            event = json.loads(msg.data)
            if event["type"] == "message.created":
                bodies.append(event["message"]["body"])
            continue
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return msg.data, msg.extra or "", bodies
        return ws.close_code, "", bodies


async def socket_on_a_with_a_message(
    http: aiohttp.ClientSession, a: Proc, b: Proc, people: dict[str, Any]
) -> tuple[aiohttp.ClientWebSocketResponse, int]:
    ws = await http.ws_connect(a.url + "/api/v1/ws", headers=bearer(people["tokens"]["colleague"]))
    assert (await ws.receive_json(timeout=5))["type"] == "unread"
    async with http.post(
        b.url + "/api/v1/conversations",
        json={"participant_ids": [people["colleague_id"]], "body": "before the change"},
        headers=bearer(people["tokens"]["owner"]),
    ) as resp:
        assert resp.status == 201
        conv_id = (await resp.json())["id"]
    while True:
        event = await ws.receive_json(timeout=10)
        if event["type"] == "message.created":
            assert event["message"]["body"] == "before the change"
            return ws, conv_id


async def test_r27_sign_out_through_gateway_b_closes_the_socket_on_gateway_a(gateways) -> None:  # noqa: F811
    env, (a, b) = gateways
    async with aiohttp.ClientSession() as http:
        people = await practice(http, env, a)
        ws, conv_id = await socket_on_a_with_a_message(http, a, b, people)
        started = time.monotonic()
        async with http.post(
            b.url + "/api/v1/auth/logout", headers=bearer(people["tokens"]["colleague"])
        ) as r:
            assert r.status == 200
        # The colleague still takes part (only that token ended), so this send succeeds: it must not reach
        # the socket that token opened.
        assert await send(http, b.url, people["tokens"]["owner"], conv_id, "after: private") == 201
        code, reason, bodies = await until_closed(ws)
        assert (code, reason) == (ACCESS_ENDED, "signed_out")
        assert time.monotonic() - started < 2.0
        assert "after: private" not in bodies


async def test_r27_messaging_off_through_gateway_b_closes_the_socket_on_gateway_a(gateways) -> None:  # noqa: F811
    env, (a, b) = gateways
    async with aiohttp.ClientSession() as http:
        people = await practice(http, env, a)
        ws, _ = await socket_on_a_with_a_message(http, a, b, people)
        started = time.monotonic()
        async with http.patch(
            f"{b.url}/api/v1/team-members/{people['colleague_id']}",
            json={"messaging_enabled": False},
            headers=people["key"],
        ) as resp:
            assert resp.status == 200
        code, reason, _ = await until_closed(ws)
        assert (code, reason) == (ACCESS_ENDED, "messaging_off")
        assert time.monotonic() - started < 2.0


async def test_r27_r26_deactivation_through_gateway_b_closes_the_socket_on_gateway_a(gateways) -> None:  # noqa: F811
    env, (a, b) = gateways
    async with aiohttp.ClientSession() as http:
        people = await practice(http, env, a)
        ws, _ = await socket_on_a_with_a_message(http, a, b, people)
        started = time.monotonic()
        async with http.delete(
            f"{b.url}/api/v1/team-members/{people['colleague_id']}", headers=people["key"]
        ) as resp:
            assert resp.status == 200 and (await resp.json())["active"] is False
        code, reason, bodies = await until_closed(ws)
        assert (code, reason) == (ACCESS_ENDED, "signed_out")
        assert time.monotonic() - started < 2.0
        assert bodies == []


async def test_r27_r25_a_password_change_through_gateway_b_closes_the_socket_on_gateway_a(gateways) -> None:  # noqa: F811
    env, (a, b) = gateways
    async with aiohttp.ClientSession() as http:
        people = await practice(http, env, a)
        ws, conv_id = await socket_on_a_with_a_message(http, a, b, people)
        async with http.get(b.url + "/api/v1/me", headers=bearer(people["tokens"]["colleague"])) as resp:
            email = (await resp.json())["participant"]["email"]
        async with http.post(b.url + "/api/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
            assert r.status == 200
            on_b = (await r.json())["token"]  # the colleague's other device, where the change is made
        started = time.monotonic()
        change = {"current_password": PASSWORD, "new_password": "a new colleague passphrase"}
        async with http.put(b.url + "/api/v1/me/password", json=change, headers=bearer(on_b)) as resp:
            assert resp.status == 200
        # The colleague still takes part, so this send succeeds: it must not reach the socket on A.
        assert await send(http, b.url, people["tokens"]["owner"], conv_id, "after: private") == 201
        code, reason, bodies = await until_closed(ws)
        assert (code, reason) == (ACCESS_ENDED, "signed_out")
        assert time.monotonic() - started < 2.0
        assert "after: private" not in bodies
