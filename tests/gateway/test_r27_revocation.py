"""R27: what ends access ends it on open websockets too, within two seconds: the server closes the socket
with 4401 and sends nothing more on it — no `message.created` for a message sent after the change.

Each way access ends has its own test (API and web sign-out, portal sign-out, a team member's or client's
messaging off, a client's portal access off, a contact through its client, expiry), on SQLite and
PostgreSQL. One test revokes a token straight in the database, with no event at all: the periodic re-check
alone must close the socket. And the controls: a change that ends nobody's access closes nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType

from gateway.auth import PORTAL_COOKIE
from gateway.keys import CTX, HUB
from gateway.realtime import ACCESS_ENDED
from inbox import accounts, passwords
from inbox.models import AuthToken, Participant
from tests.conftest import PASSWORD
from tests.gateway.pages import hidden_fields, post_sign_in, signed_in_csrf

WITHIN_S = 2.0


@dataclass
class Ending:
    """What a socket received from the moment access ended until it closed."""

    code: int | None
    reason: str
    seconds: float
    bodies: list[str] = field(default_factory=list)  # the text of every message.created received


async def open_socket(client: Any, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = await client.ws_connect("/api/v1/ws", headers=headers)
    first = await ws.receive_json(timeout=5)
    assert first["type"] == "unread"
    return ws


async def until_closed(ws: Any, started: float, limit: float = 10.0) -> Ending:
    bodies = []
    while True:
        msg = await ws.receive(timeout=limit)
        if msg.type == WSMsgType.TEXT:
            event = msg.json()
            if event["type"] == "message.created":
                bodies.append(event["message"]["body"])
            continue
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            code = msg.data if msg.type == WSMsgType.CLOSE else ws.close_code
            reason = msg.extra or "" if msg.type == WSMsgType.CLOSE else ""
            return Ending(code, reason, time.monotonic() - started, bodies)
        raise AssertionError(f"unexpected frame {msg!r}")


async def still_open(ws: Any, wait: float = 2.5) -> list[dict[str, Any]]:
    """The socket stays open for `wait` seconds (more than two periodic re-checks); the events it got."""
    events = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        assert msg.type == WSMsgType.TEXT, f"the socket was closed: {msg!r}"
        events.append(msg.json())
    return events


async def next_created(ws: Any) -> str:
    while True:
        event = await ws.receive_json(timeout=5)
        if event["type"] == "message.created":
            return str(event["message"]["body"])


async def conversation(api: Any, cast: Any, writer: str, other: str) -> int:
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id(other)]}, token=cast.tok(writer)
    )
    assert status in (200, 201), conv
    return int(conv["id"])


async def say(api: Any, cast: Any, who: str, conv_id: int, body: str) -> None:
    status, answer = await api.post(f"/conversations/{conv_id}/messages", {"body": body}, token=cast.tok(who))
    assert status == 201, answer


AFTER = "after the change: private"


async def live_then_ended(
    api: Any, cast: Any, ws: Any, sender: str, conv_id: int, end: Any, *, who: str, refused: bool = False
) -> Ending:
    """`who`'s socket gets a message; `end()` ends the access behind it; a message sent right after must
    never reach it, and it closes with 4401 within two seconds."""
    await say(api, cast, sender, conv_id, "before the change")
    assert await next_created(ws) == "before the change"
    started = time.monotonic()
    await end()
    status, _ = await api.post(f"/conversations/{conv_id}/messages", {"body": AFTER}, token=cast.tok(sender))
    if refused:
        # R3/R4: the send itself is refused now. A send that passed its checks just before the change
        # publishes its event just after it: this frame stands for that one.
        assert status == 403
        hub = api.client.server.app[HUB]
        await hub.publish(
            [cast.id(who)],
            {"type": "message.created", "conversation_id": conv_id, "message": {"body": AFTER}},
        )
    else:
        assert status == 201
    ending = await until_closed(ws, started)
    assert ending.code == ACCESS_ENDED
    assert ending.seconds < WITHIN_S
    assert AFTER not in ending.bodies
    return ending


async def test_r27_api_logout_closes_the_socket_with_4401_and_sends_nothing_more(client, api, cast):
    conv_id = await conversation(api, cast, "clinician", "clinician2")
    ws = await open_socket(client, cast.tok("clinician2"))

    async def logout() -> None:
        assert (await api.post("/auth/logout", {}, token=cast.tok("clinician2")))[0] == 200

    ending = await live_then_ended(api, cast, ws, "clinician", conv_id, logout, who="clinician2")
    assert ending.reason == "signed_out"
    assert ending.bodies == []


async def test_r27_logout_closes_only_the_sockets_of_that_token(client, api, cast):
    """Signing out one app ends that token's socket; the person's other token keeps its own socket."""
    conv_id = await conversation(api, cast, "clinician", "clinician2")
    member = await Participant.get(id=cast.id("clinician2"))
    other_token, _ = await accounts.issue_token(client.server.app[CTX], member, "app")
    ended = await open_socket(client, cast.tok("clinician2"))
    kept = await open_socket(client, other_token)
    assert (await api.post("/auth/logout", {}, token=cast.tok("clinician2")))[0] == 200
    assert (await until_closed(ended, time.monotonic())).code == ACCESS_ENDED
    await say(api, cast, "clinician", conv_id, "still here?")
    assert await next_created(kept) == "still here?"
    assert {e["type"] for e in await still_open(kept)} <= {"unread"}
    await kept.close()


async def test_r27_web_sign_out_closes_the_inbox_socket(client, api, cast):
    conv_id = await conversation(api, cast, "clinician2", "clinician")
    email = (await Participant.get(id=cast.id("clinician"))).email
    resp = await post_sign_in(client, email, PASSWORD)
    assert resp.status == 303
    csrf = await signed_in_csrf(client)
    ws = await open_socket(client)  # the session cookie, as the inbox page opens it

    async def sign_out() -> None:
        resp = await client.post("/sign-out", data={"csrf": csrf}, allow_redirects=False)
        assert resp.status == 303

    ending = await live_then_ended(api, cast, ws, "clinician2", conv_id, sign_out, who="clinician")
    assert ending.reason == "signed_out"


async def test_r27_portal_sign_out_closes_the_portal_socket(client, api, cast):
    conv_id = await conversation(api, cast, "clinician", "client")
    person = await Participant.get(id=cast.id("client"))
    token, row = await accounts.issue_token(client.server.app[CTX], person, "session", csrf=True)
    client.session.cookie_jar.update_cookies({PORTAL_COOKIE: token})
    ws = await open_socket(client)

    async def sign_out() -> None:
        resp = await client.post("/portal/sign-out", data={"csrf": row.csrf_token}, allow_redirects=False)
        assert resp.status == 303

    ending = await live_then_ended(api, cast, ws, "clinician", conv_id, sign_out, who="client")
    assert ending.reason == "signed_out"


async def test_r27_r3_team_member_messaging_off_closes_their_socket(client, api, cast):
    conv_id = await conversation(api, cast, "clinician", "clinician2")
    ws = await open_socket(client, cast.tok("clinician2"))

    async def messaging_off() -> None:
        status, _ = await api.patch(
            f"/team-members/{cast.id('clinician2')}", {"messaging_enabled": False}, token=cast.api_key
        )
        assert status == 200

    ending = await live_then_ended(
        api, cast, ws, "clinician", conv_id, messaging_off, who="clinician2", refused=True
    )
    assert ending.reason == "messaging_off"
    # Nor does a new socket open for them: it is closed at once, before anything is sent on it.
    ws = await client.ws_connect("/api/v1/ws", headers={"Authorization": f"Bearer {cast.tok('clinician2')}"})
    again = await until_closed(ws, time.monotonic())
    assert (again.code, again.reason, again.bodies) == (ACCESS_ENDED, "messaging_off", [])


async def test_r27_r4_client_messaging_off_closes_the_client_and_contact_sockets(client, api, cast):
    conv_id = await conversation(api, cast, "clinician", "client")
    status, _ = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("contact")], "body": "hello"},
        token=cast.tok("clinician"),
    )
    assert status == 201
    contact = await open_socket(client, cast.tok("contact"))
    ws = await open_socket(client, cast.tok("client"))

    async def messaging_off() -> None:
        status, _ = await api.patch(
            f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key
        )
        assert status == 200

    ending = await live_then_ended(
        api, cast, ws, "clinician", conv_id, messaging_off, who="client", refused=True
    )
    assert ending.reason == "signed_out"  # R4: turning messaging off revokes the client's tokens too
    # R10: the client's contact takes part under the client's flags, so its socket ends too.
    assert (await until_closed(contact, time.monotonic())).code == ACCESS_ENDED


async def test_r27_r4_client_portal_access_off_closes_their_socket(client, api, cast):
    conv_id = await conversation(api, cast, "clinician", "client")
    ws = await open_socket(client, cast.tok("client"))

    async def portal_off() -> None:
        status, _ = await api.patch(
            f"/clients/{cast.id('client')}", {"portal_access": False}, token=cast.api_key
        )
        assert status == 200

    await live_then_ended(api, cast, ws, "clinician", conv_id, portal_off, who="client", refused=True)


async def test_r27_token_expiry_closes_the_socket(client, api, cast, clock):
    conv_id = await conversation(api, cast, "clinician", "clinician2")
    ws = await open_socket(client, cast.tok("clinician2"))
    await say(api, cast, "clinician", conv_id, "before expiry")
    assert await next_created(ws) == "before expiry"
    clock.advance(client.server.app[CTX].session_ttl_s + 1)
    ending = await until_closed(ws, time.monotonic())
    assert (ending.code, ending.reason) == (ACCESS_ENDED, "expired")
    assert ending.seconds < WITHIN_S


async def test_r27_the_periodic_recheck_alone_closes_a_socket_revoked_in_the_database(
    client, api, cast, clock
):
    """No event at all: the token row is revoked straight in the database, as another process or a
    database console would. Within two seconds the socket is closed anyway."""
    ws = await open_socket(client, cast.tok("client"))
    row = await AuthToken.filter(participant_id=cast.id("client")).first()
    assert row is not None
    started = time.monotonic()
    await AuthToken.filter(id=row.id).update(revoked_at=clock.now())
    ending = await until_closed(ws, started)
    assert (ending.code, ending.reason) == (ACCESS_ENDED, "signed_out")
    assert ending.seconds < WITHIN_S
    assert client.server.app[HUB].connected() == 0


async def test_r27_a_change_that_ends_nobody_s_access_closes_no_socket(client, api, cast):
    """The controls: another person's sign-out, messaging turned on, a client's other fields changed, and
    many periodic re-checks leave the socket open and receiving."""
    conv_id = await conversation(api, cast, "clinician", "client")
    ws = await open_socket(client, cast.tok("client"))
    mine = await open_socket(client, cast.tok("clinician"))
    assert (await api.post("/auth/logout", {}, token=cast.tok("biller")))[0] == 200
    for change in ({"messaging_enabled": True}, {"portal_access": True}, {"name": "Client Renamed"}):
        status, _ = await api.patch(f"/clients/{cast.id('client')}", change, token=cast.api_key)
        assert status == 200
    status, _ = await api.patch(
        f"/team-members/{cast.id('clinician2')}", {"messaging_enabled": False}, token=cast.api_key
    )
    assert status == 200
    await say(api, cast, "clinician", conv_id, "still with you")
    assert await next_created(ws) == "still with you"
    assert {e["type"] for e in await still_open(ws)} <= {"unread"}
    # (messaging.changed: clinician2's messaging went off, and the thread says so live; not a closing)
    assert {e["type"] for e in await still_open(mine, 0.2)} <= {
        "unread",
        "message.created",
        "messaging.changed",
    }
    assert client.server.app[HUB].ended_access == 0
    await ws.close()
    await mine.close()


async def test_r27_many_sockets_are_rechecked_and_only_the_ended_ones_close(client, api, cast):
    """One batched check covers every socket: of a dozen, exactly the revoked ones close."""
    ctx = client.server.app[CTX]
    member = await Participant.get(id=cast.id("clinician2"))
    tokens = [(await accounts.issue_token(ctx, member, "app"))[0] for _ in range(12)]
    sockets = [await open_socket(client, t) for t in tokens]
    revoked = {3, 7, 11}
    for i in revoked:
        principal = await accounts.resolve_token(ctx, tokens[i])
        assert principal is not None
        await AuthToken.filter(id=principal.token_id).update(revoked_at=ctx.clock.now())
    started = time.monotonic()
    for i in sorted(revoked):
        ending = await until_closed(sockets[i], started)
        assert ending.code == ACCESS_ENDED and ending.seconds < WITHIN_S
    await asyncio.sleep(0.2)
    assert client.server.app[HUB].connected() == len(tokens) - len(revoked)
    for i, ws in enumerate(sockets):
        if i not in revoked:
            assert not ws.closed
            await ws.close()


async def test_r27_r25_a_password_change_closes_the_persons_other_sockets(client, api, cast):
    """R25: a password change ends every other session and socket of that person; the one it was made
    with stays."""
    conv_id = await conversation(api, cast, "clinician", "clinician2")
    member = await Participant.get(id=cast.id("clinician2"))
    changer, _ = await accounts.issue_token(client.server.app[CTX], member, "app")
    ws = await open_socket(client, cast.tok("clinician2"))
    kept = await open_socket(client, changer)

    async def change_password() -> None:
        status, body = await api.put(
            "/me/password",
            {"current_password": PASSWORD, "new_password": "a new and longer passphrase"},
            token=changer,
        )
        assert status == 200, body

    ending = await live_then_ended(api, cast, ws, "clinician", conv_id, change_password, who="clinician2")
    assert ending.reason == "signed_out"
    assert [await next_created(kept), await next_created(kept)] == ["before the change", AFTER]
    await kept.close()


async def test_r27_r25_a_password_changed_on_the_settings_page_closes_the_persons_app_socket(
    client, api, cast
):
    """The web page's change (`/settings/password`) reaches the hub like the API's: the person's app
    socket closes, and a message sent right after never reaches it."""
    conv_id = await conversation(api, cast, "clinician", "clinician2")
    email = (await Participant.get(id=cast.id("clinician2"))).email
    assert (await post_sign_in(client, email, PASSWORD)).status == 303
    ws = await open_socket(client, cast.tok("clinician2"))

    async def change_password() -> None:
        page = await client.get("/settings/password")
        fields = hidden_fields(await page.text())
        new = "a new and longer passphrase"
        form = fields | {"current": PASSWORD, "password": new, "confirm": new}
        resp = await client.post("/settings/password", data=form, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/account?done=password"

    ending = await live_then_ended(api, cast, ws, "clinician", conv_id, change_password, who="clinician2")
    assert ending.reason == "signed_out"


async def test_r27_r25_a_password_reset_closes_every_socket_of_the_person(client, api, cast):
    """A reset from the emailed link ends every session of the person, the open sockets with them."""
    conv_id = await conversation(api, cast, "clinician", "clinician2")
    member = await Participant.get(id=cast.id("clinician2"))
    link = await passwords.issue_link(client.server.app[CTX], member, "reset")
    path = link[link.index("/reset/") :]
    ws = await open_socket(client, cast.tok("clinician2"))

    async def reset() -> None:
        page = await client.get(path)
        assert page.status == 200
        new = "a new and longer passphrase"
        form = hidden_fields(await page.text()) | {"password": new, "confirm": new}
        resp = await client.post(path, data=form, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/?notice=password_set"

    ending = await live_then_ended(api, cast, ws, "clinician", conv_id, reset, who="clinician2")
    assert ending.reason == "signed_out"


async def test_r27_r26_deactivation_closes_the_members_sockets(client, api, cast):
    conv_id = await conversation(api, cast, "clinician", "clinician2")
    ws = await open_socket(client, cast.tok("clinician2"))

    async def deactivate() -> None:
        status, body = await api.delete(f"/team-members/{cast.id('clinician2')}", token=cast.api_key)
        assert status == 200 and body["active"] is False

    ending = await live_then_ended(
        api, cast, ws, "clinician", conv_id, deactivate, who="clinician2", refused=True
    )
    assert ending.reason == "signed_out"


async def test_r27_r26_the_periodic_recheck_alone_closes_a_deactivated_members_socket(client, api, cast):
    """Deactivated straight in the database, tokens left as they were and no event: the re-check reads
    `active` itself, so a token that deactivation missed still ends."""
    ws = await open_socket(client, cast.tok("clinician2"))
    started = time.monotonic()
    await Participant.filter(id=cast.id("clinician2")).update(active=False)
    ending = await until_closed(ws, started)
    assert (ending.code, ending.reason) == (ACCESS_ENDED, "signed_out")
    assert ending.seconds < WITHIN_S
