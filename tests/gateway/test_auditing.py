"""R24 in the record: an audit row commits with its change or not at all (the send's group commit included),
sends and openings of conversations are audited, and so are sign-ins the rate limits refused; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from tortoise import Tortoise

from gateway.auth import SESSION_COOKIE
from gateway.keys import CTX
from gateway.limits import POLICIES
from inbox import audit, links
from inbox.models import AuditEvent, AuthToken, Export, Message, Participant
from tests.conftest import PASSWORD
from tests.gateway.pages import hidden_fields, post_sign_in


@asynccontextmanager
async def audit_inserts_fail(db_url):
    """The audit table refuses every insert (a database error between the change and its row)."""
    conn = Tortoise.get_connection("default")
    if db_url.startswith("sqlite"):
        await conn.execute_script(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_event "
            "BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END;"
        )
    else:
        await conn.execute_script(
            "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$; "
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_event FOR EACH ROW EXECUTE FUNCTION audit_down();"
        )
    try:
        yield
    finally:
        await conn.execute_script(
            "DROP TRIGGER audit_down"
            if db_url.startswith("sqlite")
            else "DROP TRIGGER audit_down ON audit_event; DROP FUNCTION audit_down();"
        )


async def open_conversation(api, cast, who="clinician", with_whom="client", body="Hello"):
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id(with_whom)], "body": body}, token=cast.tok(who)
    )
    assert status == 201, conv
    return conv


async def rows(api, cast, action):
    status, body = await api.get("/audit?limit=500", token=cast.tok("owner"))
    assert status == 200
    return [r for r in body["items"] if r["action"] == action]


async def test_r24_a_send_whose_audit_row_fails_is_not_stored(api, cast, db_url):
    conv = await open_conversation(api, cast)
    before = await Message.all().count()
    async with audit_inserts_fail(db_url):
        status, body = await api.post(
            f"/conversations/{conv['id']}/messages",
            {"body": "Not without its audit row"},
            token=cast.tok("client"),
        )
        assert status >= 500, body
    assert await Message.all().count() == before  # the message went with its row
    status, body = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": "Now it is recorded"}, token=cast.tok("client")
    )
    assert status == 201
    sent = await rows(api, cast, "message.send")
    assert [(r["target_id"], r["actor_id"]) for r in sent][-1] == (
        str(body["message"]["id"]),
        cast.id("client"),
    )


async def test_r24_a_removal_whose_audit_row_fails_is_undone(api, cast, db_url):
    conv = await open_conversation(api, cast)
    message_id = conv["message"]["id"]
    async with audit_inserts_fail(db_url):
        status, _ = await api.delete(f"/messages/{message_id}", token=cast.tok("clinician"))
        assert status >= 500
    assert (await Message.get(id=message_id)).removed_at is None  # the old code kept the removal
    status, body = await api.get(f"/conversations/{conv['id']}/messages", token=cast.tok("client"))
    assert body["items"][-1]["removed"] is None
    status, _ = await api.delete(f"/messages/{message_id}", token=cast.tok("clinician"))
    assert status == 200
    assert [r["target_id"] for r in await rows(api, cast, "message.remove")] == [str(message_id)]


async def test_r24_an_export_request_whose_audit_row_fails_is_not_made(api, cast, db_url):
    async with audit_inserts_fail(db_url):
        status, _ = await api.post("/exports", {"scope": "all"}, token=cast.tok("owner"))
        assert status >= 500
    assert await Export.all().count() == 0  # nor its job: nothing would write a zip nobody asked for
    status, made = await api.post("/exports", {"scope": "all"}, token=cast.tok("owner"))
    assert status == 202
    assert [r["target_id"] for r in await rows(api, cast, "export.request")] == [str(made["id"])]


async def test_r24_a_settings_change_whose_audit_row_fails_is_undone(api, cast, db_url):
    async with audit_inserts_fail(db_url):
        status, _ = await api.patch("/practice/settings", {"name": "Renamed"}, token=cast.api_key)
        assert status >= 500
    status, settings = await api.get("/practice/settings", token=cast.api_key)
    assert settings["name"] == "Riverbend Counseling"


async def test_r24_every_send_is_audited_and_chained(api, cast, client):
    conv = await open_conversation(api, cast)
    ctx = client.server.app[CTX]

    async def send(i):
        who = "client" if i % 2 else "clinician"
        status, body = await api.post(
            f"/conversations/{conv['id']}/messages", {"body": f"message {i}"}, token=cast.tok(who)
        )
        assert status == 201, body
        return body["message"]["id"], cast.id(who)

    sent = await asyncio.gather(*[send(i) for i in range(24)])  # through the group commit, many at a time
    sent.append((conv["message"]["id"], cast.id("clinician")))  # the first, sent with the conversation
    rows_ = await rows(api, cast, "message.send")
    assert sorted((int(r["target_id"]), r["actor_id"]) for r in rows_) == sorted(sent)
    for r in rows_:
        assert r["target_type"] == "message" and r["detail"] == {"conversation_id": conv["id"]}
        assert r["ip"] == "127.0.0.1" and r["seq"] is not None
        assert "message " not in str(r)  # never the text
    (report,) = await audit.verify(ctx, (await Participant.get(id=cast.id("owner"))).practice_id)
    assert report.ok, report


async def test_r24_send_rows_are_sealed_shortly_after_the_send_without_a_reader(api, cast):
    conv = await open_conversation(api, cast)
    status, body = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": "sealed soon"}, token=cast.tok("client")
    )
    assert status == 201
    target = str(body["message"]["id"])
    for _ in range(100):
        row = await AuditEvent.filter(action="message.send", target_id=target).first()
        if row is not None and row.seq is not None:
            break
        await asyncio.sleep(0.05)
    assert row is not None and row.seq is not None and row.hash


async def test_r24_a_send_row_pointed_at_another_message_is_not_sealed(api, cast, client):
    """A send's mac cannot cover its message id (the message gets it in the same statement), so the seal
    checks the row against the message: someone who repoints it before the seal keeps it out of the chain."""
    conv = await open_conversation(api, cast)
    ctx = client.server.app[CTX]
    await audit.seal(ctx, 1)
    row = audit.new_row(
        ctx, 1, await Participant.get(id=cast.id("client")), audit.SEND, "message", None,
        {"conversation_id": conv["id"]}, None, ctx.clock.now(),
    )  # fmt: skip
    row.target_id = str(conv["message"]["id"])  # the clinician's message, not the client's
    await row.save()
    await audit.seal(ctx, 1)
    assert (await AuditEvent.get(id=row.id)).seq is None
    (report,) = await audit.verify(ctx, 1)
    assert not report.ok and report.bad_row_id == row.id and "not in the chain" in (report.problem or "")


async def test_r24_opening_a_conversation_is_audited_once_an_hour(api, cast, clock):
    conv = await open_conversation(api, cast)
    path = f"/conversations/{conv['id']}/messages"
    for _ in range(3):
        status, _ = await api.get(path, token=cast.tok("client"))
        assert status == 200
    status, _ = await api.get(path, token=cast.tok("clinician"))
    assert status == 200
    opened = await rows(api, cast, "conversation.open")
    assert [(r["actor_id"], r["target_id"]) for r in opened] == [
        (cast.id("client"), str(conv["id"])),
        (cast.id("clinician"), str(conv["id"])),
    ]
    clock.advance(30 * 60)
    await api.get(path, token=cast.tok("client"))
    assert len(await rows(api, cast, "conversation.open")) == 2
    clock.advance(31 * 60)
    await api.get(path, token=cast.tok("client"))
    assert len(await rows(api, cast, "conversation.open")) == 3
    # Someone who may not open it is refused, and nothing says they opened it.
    status, _ = await api.get(path, token=cast.tok("client2"))
    assert status == 404
    assert cast.id("client2") not in [r["actor_id"] for r in await rows(api, cast, "conversation.open")]


async def test_r24_a_client_opening_a_conversation_in_the_portal_is_audited(api, cast, client):
    conv = await open_conversation(api, cast)
    person = await Participant.get(id=cast.id("client"))
    token = (await links.issue_notify_link(client.server.app[CTX], person, conv["id"])).rsplit("/", 1)[1]
    resp = await client.get(f"/portal/m/{token}", allow_redirects=False)
    assert resp.status == 303
    resp = await client.get(f"/portal/c/{conv['id']}")
    assert resp.status == 200 and "Hello" in await resp.text()
    opened = await rows(api, cast, "conversation.open")
    assert [(r["actor_id"], r["actor_kind"]) for r in opened] == [(cast.id("client"), "client")]


async def test_r24_sign_ins_refused_by_the_rate_limit_are_audited(api, cast, clock):
    status, team = await api.get("/team-members", token=cast.api_key)
    email = next(m["email"] for m in team["items"] if m["id"] == cast.id("clinician"))
    limit, window = POLICIES["login"]["who"]
    clock.advance(window - clock.now().timestamp() % window)
    for _ in range(limit):
        status, _ = await api.post("/auth/login", {"email": email, "password": "wrong password!"})
        assert status == 401
    for _ in range(3):
        status, _ = await api.post("/auth/login", {"email": email, "password": PASSWORD})
        assert status == 429
    throttled = await rows(api, cast, "auth.login_throttled")
    # One row a minute is enough to see someone hammering an account; the password was never looked at.
    assert [(r["target_id"], r["actor_kind"], r["detail"]) for r in throttled] == [
        (str(cast.id("clinician")), "anonymous", {"reason": "rate_limited"})
    ]
    assert len(await rows(api, cast, "auth.login_failed")) == limit


# People and access: each change commits with its audit row, or not at all. A refused audit insert is a
# database error of that request, not an unavailable database: 500, in docs/api.md's error shape.


async def refused(status, body):
    assert (status, body["error"]["code"]) == (500, "internal_error"), body


async def test_r24_a_deactivation_whose_audit_row_fails_is_undone(api, cast, db_url):
    who = cast.id("clinician")
    async with audit_inserts_fail(db_url):
        await refused(*await api.delete(f"/team-members/{who}", token=cast.api_key))
    assert (await Participant.get(id=who)).active
    status, me = await api.get("/me", token=cast.tok("clinician"))  # the token did not end either
    assert status == 200 and me["participant"]["id"] == who
    status, team = await api.get("/team-members", token=cast.api_key)
    assert who in [m["id"] for m in team["items"]]
    status, body = await api.delete(f"/team-members/{who}", token=cast.api_key)
    assert status == 200 and body["active"] is False
    assert (await api.get("/me", token=cast.tok("clinician")))[0] == 401
    assert [r["target_id"] for r in await rows(api, cast, "team_member.deactivate")] == [str(who)]


async def test_r24_a_client_update_whose_audit_row_fails_is_undone(api, cast, db_url):
    who = cast.id("client")
    change = {"name": "Someone Else", "messaging_enabled": False}
    async with audit_inserts_fail(db_url):
        await refused(*await api.patch(f"/clients/{who}", change, token=cast.api_key))
    status, body = await api.get(f"/clients/{who}", token=cast.api_key)
    assert (body["name"], body["messaging_enabled"]) == ("Client Person", True)
    assert (await api.get("/me", token=cast.tok("client")))[0] == 200  # "off" did not end their token
    status, body = await api.patch(f"/clients/{who}", change, token=cast.api_key)
    assert status == 200 and body["name"] == "Someone Else"
    assert (await api.get("/me", token=cast.tok("client")))[0] == 401
    (row,) = await rows(api, cast, "client.update")
    assert row["target_id"] == str(who) and row["detail"]["changed"] == ["messaging_enabled", "name"]


async def test_r24_an_api_key_whose_audit_row_fails_is_not_made(api, cast, db_url):
    status, before = await api.get("/api-keys", token=cast.tok("owner"))
    assert status == 200
    new_key = {"name": "Billing system", "scopes": ["provisioning"]}
    async with audit_inserts_fail(db_url):
        status, body = await api.post("/api-keys", new_key, token=cast.tok("owner"))
        await refused(status, body)
        assert "key" not in body  # a key that was never stored is never shown
    status, after = await api.get("/api-keys", token=cast.tok("owner"))
    assert [k["id"] for k in after["items"]] == [k["id"] for k in before["items"]]
    status, made = await api.post("/api-keys", new_key, token=cast.tok("owner"))
    assert status == 201
    assert (await api.get("/team-members", token=made["key"]))[0] == 200
    assert [r["target_id"] for r in await rows(api, cast, "api_key.create")] == [str(made["id"])]


async def test_r24_a_password_change_whose_audit_row_fails_is_undone(api, cast, db_url):
    who = cast.id("clinician")
    email = (await Participant.get(id=who)).email
    status, other = await api.post("/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200
    change = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    async with audit_inserts_fail(db_url):
        await refused(*await api.put("/me/password", change, token=cast.tok("clinician")))
    assert (await api.get("/me", token=other["token"]))[0] == 200  # the other session did not end
    status, _ = await api.post("/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200  # and the old password still works
    status, body = await api.put("/me/password", change, token=cast.tok("clinician"))
    assert status == 200 and body["ended_sessions"] == 2
    assert (await api.get("/me", token=other["token"]))[0] == 401
    (row,) = await rows(api, cast, "auth.password_change")
    assert (row["target_id"], row["detail"]) == (str(who), {"ended": 2})


async def test_r24_a_sign_out_whose_audit_row_fails_is_undone(api, cast, db_url):
    async with audit_inserts_fail(db_url):
        await refused(*await api.post("/auth/logout", {}, token=cast.tok("clinician")))
    assert (await api.get("/me", token=cast.tok("clinician")))[0] == 200
    assert (await api.post("/auth/logout", {}, token=cast.tok("clinician")))[0] == 200
    assert (await api.get("/me", token=cast.tok("clinician")))[0] == 401
    assert [r["actor_id"] for r in await rows(api, cast, "auth.logout")] == [cast.id("clinician")]


# Sign-ins: a session or token exists only with its sign-in's audit row (HIPAA log-in monitoring). The row
# used to be written after the session had committed, so a refused row left a working, unrecorded session
# (and an Instant Sign In link used up by it).


async def tokens_of(who: int) -> int:
    return await AuthToken.filter(participant_id=who).count()


async def sign_in_rows(api, cast, action: str, who: int) -> int:
    return len([r for r in await rows(api, cast, action) if r["actor_id"] == who])


async def test_r24_an_api_sign_in_whose_audit_row_fails_issues_no_token(api, cast, db_url):
    who = cast.id("clinician")
    email = (await Participant.get(id=who)).email
    before = await tokens_of(who)
    async with audit_inserts_fail(db_url):
        await refused(*await api.post("/auth/login", {"email": email, "password": PASSWORD}))
    assert await tokens_of(who) == before
    status, body = await api.post("/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200 and (await api.get("/me", token=body["token"]))[0] == 200
    assert await tokens_of(who) == before + 1
    assert await sign_in_rows(api, cast, "auth.login", who) == 1


async def test_r24_a_page_sign_in_whose_audit_row_fails_starts_no_session(client, api, cast, db_url):
    who = cast.id("clinician")
    email = (await Participant.get(id=who)).email
    before = await tokens_of(who)
    async with audit_inserts_fail(db_url):
        resp = await post_sign_in(client, email, PASSWORD)
        assert resp.status == 500
        assert not [c for c in resp.headers.getall("Set-Cookie", []) if c.startswith(SESSION_COOKIE + "=")]
    assert await tokens_of(who) == before
    resp = await post_sign_in(client, email, PASSWORD)
    assert resp.status == 303 and resp.headers["Location"] == "/inbox"
    assert await tokens_of(who) == before + 1
    assert await sign_in_rows(api, cast, "auth.login", who) == 1


async def test_r24_a_link_sign_in_whose_audit_row_fails_starts_no_session(client, api, cast, db_url):
    conv = await open_conversation(api, cast)
    ctx = client.server.app[CTX]
    who = cast.id("client")
    person = await Participant.get(id=who)
    before = await tokens_of(who)
    notify_path = "/portal/m/" + (await links.issue_notify_link(ctx, person, conv["id"])).rsplit("/", 1)[1]
    async with audit_inserts_fail(db_url):
        resp = await client.get(notify_path, allow_redirects=False)
        assert resp.status == 500
        assert not resp.cookies
    assert await tokens_of(who) == before
    resp = await client.get(notify_path, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/portal/c/{conv['id']}"
    assert await tokens_of(who) == before + 1
    assert await sign_in_rows(api, cast, "auth.link_sign_in", who) == 1


async def test_r24_an_instant_sign_in_whose_audit_row_fails_leaves_the_link_unused(client, api, cast, db_url):
    ctx = client.server.app[CTX]
    who = cast.id("client")
    before = await tokens_of(who)
    path = (
        "/portal/s/" + (await links.issue_signin_link(ctx, await Participant.get(id=who))).rsplit("/", 1)[1]
    )
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 200
    form = {"csrf": hidden_fields(await resp.text())["csrf"]}
    async with audit_inserts_fail(db_url):
        resp = await client.post(path, data=form, allow_redirects=False)
        assert resp.status == 500
    assert await tokens_of(who) == before
    resp = await client.post(path, data=form, allow_redirects=False)  # the link was not used up
    assert resp.status == 303 and resp.headers["Location"] == "/portal"
    assert await tokens_of(who) == before + 1
    assert await sign_in_rows(api, cast, "auth.link_sign_in", who) == 1


async def test_r24_a_link_exchange_whose_audit_row_fails_issues_no_token(client, api, cast, db_url):
    ctx = client.server.app[CTX]
    who = cast.id("client")
    before = await tokens_of(who)
    token = (await links.issue_signin_link(ctx, await Participant.get(id=who))).rsplit("/", 1)[1]
    async with audit_inserts_fail(db_url):
        await refused(*await api.post("/auth/magic", {"token": token}))
    assert await tokens_of(who) == before
    status, body = await api.post("/auth/magic", {"token": token})  # the link was not used up
    assert status == 200 and body["participant"]["id"] == who
    assert await tokens_of(who) == before + 1
    assert await sign_in_rows(api, cast, "auth.link_exchange", who) == 1
