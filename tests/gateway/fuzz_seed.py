"""A practice with something of everything, for the schemathesis run: the `cast` people, conversations with
messages (one removed), a chart note, a finished export, devices and a webhook, all made through the API.

Fuzzed writes change people and settings (a role taken away, messaging turned off); `reset_world` puts the
cast back as it was before each write, so that every example meets the same practice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.app import make_context
from gateway.keys import DISPATCHER
from inbox import accounts
from inbox.models import ClientAccess, Participant, Practice
from tests.conftest import Cast, build_cast
from tests.gateway.live_server import LiveServer

_PEOPLE_FIELDS = ("roles", "messaging_enabled", "can_export", "portal_access", "primary_clinician_id")
_PRACTICE_FIELDS = (
    "name",
    "client_messaging_enabled",
    "team_messaging_enabled",
    "auto_enable_new_clients",
    "unread_email_delay_s",
)


@dataclass
class FuzzWorld:
    server: LiveServer
    cast: Cast
    practice_id: int
    ids: dict[str, list[int]] = field(default_factory=dict)
    people: dict[int, dict[str, Any]] = field(default_factory=dict)
    practice: dict[str, Any] = field(default_factory=dict)

    def all_ids(self) -> list[int]:
        return sorted({i for group in self.ids.values() for i in group})

    async def fresh_token(self, who: str) -> str:
        if who == "api_key":
            return self.cast.api_key
        participant = await Participant.get(id=self.cast.id(who))
        ctx = make_context(self.server.config, self.server.clock)
        token, _ = await accounts.issue_token(ctx, participant, "app")
        return token


async def seed_world(server: LiveServer) -> FuzzWorld:
    api = await server.api()
    clock = server.clock
    cast = await build_cast(api, server.config, clock)
    owner = await Participant.get(id=cast.id("owner"))
    world = FuzzWorld(server, cast, owner.practice_id)
    key = cast.api_key

    async def ok(status_body: tuple[int, Any], *expected: int) -> Any:
        status, body = status_body
        assert status in (expected or (200, 201)), body
        return body

    await ok(await api.put(f"/clients/{cast.id('client')}/access/{cast.id('owner')}", token=key))
    messages: list[int] = []
    conversations: list[int] = []
    for who, others, text in [
        ("clinician", ["client"], "Hello :smile: <b>bold</b>"),
        ("owner", ["client"], "From the owner"),
        ("owner", ["clinician"], "Team note"),
        ("clinician", ["client", "contact"], "Hello both"),
    ]:
        body = await ok(
            await api.post(
                "/conversations",
                {"participant_ids": [cast.id(o) for o in others], "body": text},
                token=cast.tok(who),
            )
        )
        conversations.append(body["id"])
        messages.append(body["message"]["id"])
        clock.advance(30)
    reply = await ok(
        await api.post(
            f"/conversations/{conversations[0]}/messages", {"body": "Reply"}, token=cast.tok("client")
        )
    )
    messages.append(reply["message"]["id"])
    removed = await ok(
        await api.post(
            f"/conversations/{conversations[1]}/messages", {"body": "Oops"}, token=cast.tok("owner")
        )
    )
    messages.append(removed["message"]["id"])
    await ok(await api.delete(f"/messages/{removed['message']['id']}", token=cast.tok("owner")))
    note = await ok(
        await api.post(
            f"/clients/{cast.id('client')}/chart-notes",
            {"message_ids": messages[:2]},
            token=cast.tok("owner"),
        )
    )
    export = await ok(await api.post("/exports", {"scope": "all"}, token=cast.tok("owner")), 202)
    devices = []
    for who, token in [("owner", "ab" * 32), ("clinician", "cd" * 32)]:
        device = await ok(
            await api.post(
                "/devices", {"platform": "apns", "token": token, "app": "practice"}, token=cast.tok(who)
            )
        )
        devices.append(device["id"])
    hook = await ok(
        await api.post(
            "/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["message.created"]}, token=key
        )
    )
    # Writes the export's zip (and tries the notifications, which have nowhere to go and wait for a retry).
    await server.app[DISPATCHER].drain()

    world.ids = {
        "people": sorted(cast.ids.values()),
        "team": sorted(
            cast.id(w) for w in ("owner", "clinician", "clinician2", "supervisor", "biller", "manager")
        ),
        "clients": [cast.id("client"), cast.id("client2")],
        "conversations": conversations,
        "messages": messages,
        "chart_notes": [note["id"]],
        "exports": [export["id"]],
        "devices": devices,
        "webhooks": [hook["id"]],
    }
    for person in await Participant.filter(id__in=list(cast.ids.values())):
        world.people[person.id] = {name: getattr(person, name) for name in _PEOPLE_FIELDS}
    practice = await Practice.get(id=world.practice_id)
    world.practice = {name: getattr(practice, name) for name in _PRACTICE_FIELDS}
    return world


async def reset_world(world: FuzzWorld) -> None:
    """The seeded practice's people and settings as they were (what the fuzzing made stays)."""
    await Practice.filter(id=world.practice_id).update(**world.practice)
    for pid, values in world.people.items():
        await Participant.filter(id=pid).update(**values, away_enabled=False)
    await ClientAccess.get_or_create(
        client_id=world.cast.id("client"),
        team_member_id=world.cast.id("owner"),
        defaults={"created_at": world.server.clock.now()},
    )
