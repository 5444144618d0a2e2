"""The authorization matrix: every endpoint × every kind of caller → the status it must get.

One table, run on SQLite and PostgreSQL. A caller is a practice's person (owner, managers with and without
export, the client's primary clinician, a clinician without access, supervisor, biller, scheduler, the client,
the client's contact), a client whose messaging was turned off (its token was revoked then: R4), the owner of
another practice, the practice's API key and another practice's, no token, and an expired token (the clock
moved past the session TTL). Every id in the table belongs to the first practice, so the other practice's
callers get 404 wherever an id is looked up (and 403 where their kind of token is refused before any lookup).

A person's token is issued fresh for each call, so that one row's sign-out cannot decide another row.
The rows run in order; a row that changes something (a device removed) comes after the rows that need it.
When a cell is wrong, the failure prints every wrong cell of the table at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.app import make_context
from gateway.config import Config
from gateway.keys import DISPATCHER
from inbox import accounts
from inbox.clock import FakeClock
from inbox.models import Participant
from tests.conftest import Api, Cast, build_cast

TEAM = ["owner", "mgr_export", "mgr", "clinician", "clinician2", "supervisor", "biller", "scheduler"]
PORTAL = ["client", "contact"]
DEAD = ["off_client", "no_token", "expired"]
CALLERS = [*TEAM, *PORTAL, "other_owner", "api_key", "other_key", *DEAD]


def expect(
    *,
    team: int,
    portal: int,
    other: int,
    key: int,
    other_key: int | None = None,
    dead: int = 401,
    **cells: int,
) -> dict[str, int]:
    """A row: the status for each group of callers, then the cells that differ (by caller name)."""
    row = {who: team for who in TEAM} | {who: portal for who in PORTAL}
    row |= {"other_owner": other, "api_key": key, "other_key": key if other_key is None else other_key}
    row |= {who: dead for who in DEAD}
    unknown = set(cells) - set(CALLERS)
    assert not unknown, unknown
    return row | cells


def everyone(status: int) -> dict[str, int]:
    return {who: status for who in CALLERS}


Body = Any | Callable[[str], Any]


@dataclass
class Row:
    method: str
    path: str  # formatted with World.ids
    expected: dict[str, int]
    body: Body = None
    advance_s: float = 0  # move the clock before each call (rate-limited sign-in)


@dataclass
class World:
    api: Api
    config: Config
    clock: FakeClock
    cast: Cast
    other: Cast
    ids: dict[str, int] = field(default_factory=dict)
    fixed_tokens: dict[str, str | None] = field(default_factory=dict)

    async def token(self, who: str) -> str | None:
        if who in self.fixed_tokens:
            return self.fixed_tokens[who]
        if who == "api_key":
            return self.cast.api_key
        if who == "other_key":
            return self.other.api_key
        pid = self.other.id("owner") if who == "other_owner" else self.ids[who]
        person = await Participant.get(id=pid)
        token, _ = await accounts.issue_token(make_context(self.config, self.clock), person, "app")
        return token


def _unique(prefix: str) -> Callable[[str], dict[str, Any]]:
    def body(who: str) -> dict[str, Any]:
        tag = uuid.uuid4().hex[:8]
        return {"name": f"{prefix} {tag}", "email": f"{prefix}-{tag}@example.org"}

    return body


def _device(who: str) -> dict[str, Any]:
    return {"platform": "apns", "token": uuid.uuid4().hex * 2, "app": "practice"}


MANAGERS = {"owner": 200, "mgr_export": 200, "mgr": 200}
UNSEEN = {"clinician2": 404, "supervisor": 404}  # R28: without access to the client
OWNER_ONLY_MANAGE = {"owner": 200, "mgr_export": 403, "mgr": 403}  # the owner's account, export rights
RECORDS = {"owner": 200, "clinician": 200}  # R21: the account owner and the client's clinician
EXPORTERS = {"owner": 200, "mgr_export": 200}  # R23
IN_C1 = {"clinician": 200, "client": 200}  # the members of conversation c1

ROWS: list[Row] = [
    # --- operations and sign-in: no authentication ---
    Row("GET", "/healthz", everyone(200)),
    Row("GET", "/readyz", everyone(200)),
    Row("GET", "/api/v1/openapi.json", everyone(200)),
    Row("POST", "/auth/magic", everyone(401), {"token": "not-a-link"}),
    Row("POST", "/auth/login", everyone(200), lambda who: {"email": LOGIN[0], "password": LOGIN[1]}, 31),
    # --- messaging ---
    Row("GET", "/me", expect(team=200, portal=200, other=200, key=403)),
    Row("PUT", "/me/away", expect(team=200, portal=403, other=200, key=403), {"enabled": False}),
    Row("GET", "/recipients", expect(team=200, portal=200, other=200, key=403)),
    Row("GET", "/conversations", expect(team=200, portal=200, other=200, key=403)),
    Row(
        "POST",
        "/conversations",
        # Each caller opens its own exchange with the client (201); the clinician's exists (200). R5, R7, R10.
        expect(
            team=201,
            portal=403,
            other=404,
            key=403,
            clinician=200,
            clinician2=403,
            supervisor=403,
            client=422,
        ),
        {"participant_ids": ["{client}"]},
    ),
    Row("GET", "/conversations/{c1}", expect(team=404, portal=404, other=404, key=403) | IN_C1),
    Row("GET", "/conversations/{c1}/messages", expect(team=404, portal=404, other=404, key=403) | IN_C1),
    Row(
        "POST",
        "/conversations/{c1}/messages",
        expect(team=404, portal=404, other=404, key=403, clinician=201, client=201),
        {"body": "matrix"},
    ),
    Row(
        "POST",
        "/conversations/{c1}/read",
        expect(team=404, portal=404, other=404, key=403) | IN_C1,
        {"up_to_message_id": "{m1}"},
    ),
    # Only the sender removes (R14): the other member gets 403, everyone else does not see the message.
    Row(
        "DELETE",
        "/messages/{m_remove}",
        expect(team=404, portal=404, other=404, key=403, clinician=200, client=403),
    ),
    # --- provisioning: the API key, the owner, practice managers ---
    Row("GET", "/practice/settings", expect(team=403, portal=403, other=200, key=200) | MANAGERS),
    Row(
        "PATCH",
        "/practice/settings",
        expect(team=403, portal=403, other=200, key=200) | MANAGERS,
        {"auto_enable_new_clients": False},
    ),
    Row("GET", "/team-members", expect(team=200, portal=403, other=200, key=200)),
    Row(
        "POST",
        "/team-members",
        expect(team=403, portal=403, other=201, key=201, owner=201, mgr_export=201, mgr=201),
        lambda who: _unique("member")(who) | {"roles": ["scheduler"]},
    ),
    Row(
        "POST",
        "/team-members",  # a new account owner: only the owner makes one (never a key: R29)
        expect(team=403, portal=403, other=201, key=403, owner=201),
        lambda who: _unique("owner")(who) | {"roles": ["account_owner"]},
    ),
    Row(
        "PATCH",
        "/team-members/{clinician2}",
        expect(team=403, portal=403, other=404, key=200, other_key=404) | MANAGERS,
        {"name": "Clinician2"},
    ),
    Row(
        "PATCH",
        "/team-members/{owner}",  # a manager (or a key, R29) must not take over the owner's account
        expect(team=403, portal=403, other=404, key=403, other_key=404) | OWNER_ONLY_MANAGE,
        {"name": "Olive Owner"},
    ),
    Row(
        "POST",
        "/team-members/{clinician}/totp",  # the member's own token only, with the password (R30)
        expect(team=403, portal=403, other=404, key=403, clinician=200),
        {"password": "correct horse battery"},
    ),
    Row("GET", "/clients", expect(team=200, portal=403, other=200, key=200)),
    Row(
        "POST",
        "/clients",
        expect(team=403, portal=403, other=201, key=201, owner=201, mgr_export=201, mgr=201),
        lambda who: _unique("client")(who) | {"primary_clinician_id": None},
    ),
    # R28: a client is visible to its clinicians (primary or granted), billers, schedulers and managers.
    Row("GET", "/clients/{client}", expect(team=200, portal=403, other=404, key=200, other_key=404) | UNSEEN),
    Row(
        "PATCH",
        "/clients/{client}",
        expect(team=403, portal=403, other=404, key=200, other_key=404) | MANAGERS,
        {"name": "Client Person"},
    ),
    Row(
        "GET",
        "/clients/{client}/contacts",
        expect(team=200, portal=403, other=404, key=200, other_key=404) | UNSEEN,
    ),
    Row(
        "POST",
        "/clients/{client}/contacts",
        expect(team=403, portal=403, other=404, key=201, other_key=404, owner=201, mgr_export=201, mgr=201),
        _unique("contact"),
    ),
    Row(
        "GET",
        "/clients/{client}/access",
        expect(team=403, portal=403, other=404, key=200, other_key=404) | MANAGERS,
    ),
    Row(
        "PUT",
        "/clients/{client2}/access/{scheduler}",
        expect(team=403, portal=403, other=404, key=200, other_key=404, owner=201, mgr_export=200, mgr=200),
    ),
    Row(
        "DELETE",
        "/clients/{client2}/access/{scheduler}",
        expect(team=403, portal=403, other=404, key=200, other_key=404) | MANAGERS,
    ),
    # --- records: R21 (access to the client's profile), R23 (exports), R24 (audit) ---
    Row("GET", "/clients/{client}/transcripts", expect(team=403, portal=403, other=404, key=403) | RECORDS),
    Row(
        "POST",
        "/clients/{client}/chart-notes",
        expect(team=403, portal=403, other=404, key=403, owner=201, clinician=201),
        {"message_ids": ["{m1}"]},
    ),
    Row("GET", "/clients/{client}/chart-notes", expect(team=403, portal=403, other=404, key=403) | RECORDS),
    Row(
        "POST",
        "/exports",
        expect(team=403, portal=403, other=202, key=403, owner=202, mgr_export=202),
        {"scope": "all"},
    ),
    Row("GET", "/exports", expect(team=403, portal=403, other=200, key=403) | EXPORTERS),
    Row("GET", "/exports/{export}", expect(team=403, portal=404, other=404, key=403) | EXPORTERS),
    Row("GET", "/exports/{export}/download", expect(team=403, portal=404, other=404, key=403) | EXPORTERS),
    Row("GET", "/audit", expect(team=403, portal=403, other=200, key=403, owner=200)),
    # --- devices: a person's own ---
    Row("GET", "/devices", expect(team=200, portal=200, other=200, key=403)),
    Row("POST", "/devices", expect(team=201, portal=201, other=201, key=403), _device),
    Row(
        "PATCH",
        "/devices/{device}",
        expect(team=404, portal=404, other=404, key=403, clinician=200),
        {"alerts": {"new_message": False}},
    ),
    Row("DELETE", "/devices/{device}", expect(team=404, portal=404, other=404, key=403, clinician=200)),
    Row("GET", "/webpush/vapid-public-key", expect(team=200, portal=200, other=200, key=403)),
    # --- integration: the practice API key ---
    Row(
        "POST",
        "/events",
        expect(team=403, portal=403, other=403, key=202, other_key=404),
        {
            "type": "appointment_alert",
            "participant_id": "{client}",
            "appointment_id": 7,
            "starts_at": "2026-01-06T10:00:00Z",
        },
    ),
    Row(
        "POST",
        "/webhooks",
        expect(team=403, portal=403, other=403, key=201),
        {"url": "https://example.org/hook", "events": ["message.created"]},
    ),
    Row("GET", "/webhooks", expect(team=403, portal=403, other=403, key=200)),
    Row(
        "GET",
        "/webhooks/{webhook}/deliveries",
        expect(team=403, portal=403, other=403, key=200, other_key=404),
    ),
    Row("DELETE", "/webhooks/{webhook}", expect(team=403, portal=403, other=403, key=200, other_key=404)),
    # --- the websocket: 101 is the handshake done ---
    Row("WS", "/api/v1/ws", expect(team=101, portal=101, other=101, key=403)),
    # --- last, because they change who may do what ---
    Row(
        "PATCH",
        "/team-members/{mgr}",  # a manager must not give themself (or another manager) export rights
        expect(team=403, portal=403, other=404, key=200, other_key=404) | OWNER_ONLY_MANAGE,
        {"can_export": True},
    ),
    Row(
        "PATCH",
        "/team-members/{temp}",  # nor make a manager an account owner (not a caller: the owner's 200 sticks)
        expect(team=403, portal=403, other=404, key=403, other_key=404) | OWNER_ONLY_MANAGE,
        {"roles": ["practice_manager", "account_owner"]},
    ),
    # --- API keys (R29): the account owner only; another practice's owner has its own ---
    Row("GET", "/api-keys", expect(team=403, portal=403, other=200, key=403, owner=200)),
    Row(
        "POST",
        "/api-keys",
        expect(team=403, portal=403, other=201, key=403, owner=201),
        {"name": "billing system", "scopes": ["integration"]},
    ),
    Row("DELETE", "/api-keys/{spare_key}", expect(team=403, portal=403, other=404, key=403, owner=200)),
    # R25: one's own password (the members made in build_world have none: their "current password" is
    # wrong); asking for a reset link answers the same to anyone, for any address.
    Row(
        "PUT",
        "/me/password",
        expect(team=200, portal=403, other=200, key=403, mgr_export=403),
        {"current_password": "correct horse battery", "new_password": "correct horse battery"},
    ),
    Row("POST", "/auth/password-reset", everyone(202), lambda who: {"email": f"{who}-reset@example.org"}),
    # R26: deactivating (again: 200, nothing changes) is for the owner, managers and the practice's key.
    Row(
        "DELETE",
        "/team-members/{leaver}",
        expect(team=403, portal=403, other=404, key=200, other_key=404) | MANAGERS,
    ),
    Row("POST", "/auth/logout", expect(team=200, portal=200, other=200, key=403)),
]

LOGIN: list[str] = []  # the clinician's email and password, set by the test


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


async def call(world: World, row: Row, who: str) -> int:
    path = row.path.format(**world.ids)
    token = await world.token(who)
    if row.method == "WS":
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            ws = await world.api.client.ws_connect(path, headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101
    body = row.body(who) if callable(row.body) else row.body
    url = path if path.startswith(("/api/", "/healthz", "/readyz")) else "/api/v1" + path
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await world.api.client.request(row.method, url, json=_fill(body, world.ids), headers=headers)
    await resp.read()  # JSON, or the export's zip
    return resp.status


async def build_world(api: Api, config: Config, clock: FakeClock, cast: Cast) -> World:
    other = await build_cast(api, config, clock, name="Another Practice")
    world = World(api, config, clock, cast, other)
    key = cast.api_key
    world.ids = {who: cast.id(who) for who in ("owner", "clinician", "clinician2", "supervisor", "biller")}
    world.ids |= {who: cast.id(who) for who in ("scheduler", "client", "client2", "contact")}
    world.ids["mgr"] = cast.id("manager")
    status, body = await api.post(
        "/team-members",
        {"name": "Mona Export", "email": f"mona-{uuid.uuid4().hex[:6]}@example.org"}
        | {"roles": ["practice_manager"], "can_export": True},
        token=key,
    )
    assert status == 201 and body["can_export"], body
    world.ids["mgr_export"] = body["id"]
    status, body = await api.post(
        "/team-members",
        {
            "name": "Tom Temp",
            "email": f"temp-{uuid.uuid4().hex[:6]}@example.org",
            "roles": ["practice_manager"],
        },
        token=key,
    )
    assert status == 201, body
    world.ids["temp"] = body["id"]
    status, body = await api.post(
        "/team-members",
        {"name": "Lee Leaver", "email": f"leaver-{uuid.uuid4().hex[:6]}@example.org", "roles": ["biller"]},
        token=key,
    )
    assert status == 201, body
    world.ids["leaver"] = body["id"]
    clinician = await Participant.get(id=cast.id("clinician"))
    LOGIN[:] = [clinician.email, "correct horse battery"]

    # An expired token: issued now, then the clock moves past the session lifetime.
    ctx = make_context(config, clock)
    old, _ = await accounts.issue_token(ctx, await Participant.get(id=cast.id("clinician2")), "app")
    clock.advance(config.session_ttl_s + 60)
    world.fixed_tokens = {"expired": old, "no_token": None}

    async def ok(expected: int, status_body: tuple[int, Any]) -> Any:
        status, body = status_body
        assert status == expected, body
        return body

    clin, client = await world.token("clinician"), await world.token("client")
    opened = await ok(
        201,
        await api.post("/conversations", {"participant_ids": [cast.id("client")], "body": "m1"}, token=clin),
    )
    world.ids["c1"], world.ids["m1"] = opened["id"], opened["message"]["id"]
    await ok(201, await api.post(f"/conversations/{opened['id']}/messages", {"body": "reply"}, token=client))
    sent = await ok(
        201, await api.post(f"/conversations/{opened['id']}/messages", {"body": "oops"}, token=clin)
    )
    world.ids["m_remove"] = sent["message"]["id"]
    device = await ok(201, await api.post("/devices", _device("clinician"), token=clin))
    world.ids["device"] = device["id"]
    export = await ok(202, await api.post("/exports", {"scope": "all"}, token=await world.token("owner")))
    world.ids["export"] = export["id"]
    await api.client.app[DISPATCHER].drain()  # the export's zip is written
    hook = await ok(
        201,
        await api.post(
            "/webhooks", {"url": "https://example.org/h", "events": ["message.created"]}, token=key
        ),
    )
    world.ids["webhook"] = hook["id"]
    spare = await ok(
        201,
        await api.post(
            "/api-keys", {"name": "spare", "scopes": ["integration"]}, token=await world.token("owner")
        ),
    )
    world.ids["spare_key"] = spare["id"]

    # A client whose messaging is turned off: the token it had stops working at once (R4).
    off = await world.token("client2")
    await ok(200, await api.patch(f"/clients/{cast.id('client2')}", {"messaging_enabled": False}, token=key))
    world.fixed_tokens["off_client"] = off
    return world


def _table(mismatches: list[tuple[str, str, int, int]]) -> str:
    lines = [f"{'endpoint':48} {'caller':12} expected  got"]
    lines += [f"{ep:48} {who:12} {exp:8}  {got}" for ep, who, exp, got in mismatches]
    return "\n".join(lines)


async def test_authorization_matrix(api: Api, config: Config, clock: FakeClock, cast: Cast) -> None:
    world = await build_world(api, config, clock, cast)
    mismatches: list[tuple[str, str, int, int]] = []
    for row in ROWS:
        assert set(row.expected) == set(CALLERS), row.path
        for who in CALLERS:
            clock.advance(row.advance_s)
            got = await call(world, row, who)
            if got != row.expected[who]:
                mismatches.append((f"{row.method} {row.path}", who, row.expected[who], got))
    assert not mismatches, "\n" + _table(mismatches)


def test_matrix_covers_every_operation() -> None:
    """Every operation of the OpenAPI description (so every route: test_openapi.py) has a row."""
    from gateway.openapi import document

    def norm(method: str, path: str) -> tuple[str, str]:
        full = path if path.startswith(("/api/", "/healthz", "/readyz")) else "/api/v1" + path
        parts = ["{}" if p.startswith("{") else p for p in full.split("/")]
        return ("GET" if method == "WS" else method, "/".join(parts))

    described = {norm(m.upper(), p) for p, ops in document()["paths"].items() for m in ops}
    covered = {norm(r.method, r.path) for r in ROWS}
    assert sorted(described - covered) == []


async def test_a_manager_cannot_take_over_the_owner_account(api: Api, cast: Cast) -> None:
    """What the matrix found: a practice manager could set the owner's password (then sign in as the owner),
    make themself an account owner, or give themself the export right (R23)."""
    mgr, owner = cast.tok("manager"), cast.id("owner")
    owner_email = (await Participant.get(id=owner)).email
    status, body = await api.patch(f"/team-members/{owner}", {"password": "taken over at last"}, token=mgr)
    assert (status, body["error"]["code"]) == (403, "password_is_personal")  # R25: nobody sets it
    status, _ = await api.post("/auth/login", {"email": owner_email, "password": "taken over at last"})
    assert status == 401
    me = cast.id("manager")
    for change in ({"roles": ["practice_manager", "account_owner"]}, {"can_export": True}):
        status, body = await api.patch(f"/team-members/{me}", change, token=mgr)
        assert (status, body["error"]["code"]) == (403, "owner_only"), change
    status, body = await api.get("/team-members", token=mgr)
    mine = next(m for m in body["items"] if m["id"] == me)
    assert mine["roles"] == ["practice_manager"] and not mine["can_export"]
    # The owner (and the practice's API key) still can.
    status, body = await api.patch(f"/team-members/{me}", {"can_export": True}, token=cast.tok("owner"))
    assert status == 200 and body["can_export"]
