"""The messaging API end to end, on SQLite and PostgreSQL (R1–R15, R20), as a client app would use it."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD


async def open_conv(api, cast, who, *others, body=None):
    payload = {"participant_ids": [cast.id(o) for o in others]}
    if body is not None:
        payload["body"] = body
    return await api.post("/conversations", payload, token=cast.tok(who))


async def send(api, cast, who, conv_id, body, **extra):
    return await api.post(f"/conversations/{conv_id}/messages", {"body": body, **extra}, token=cast.tok(who))


async def test_login_and_me(api, cast):
    status, body = await api.get("/team-members", token=cast.api_key)
    email = next(m["email"] for m in body["items"] if m["id"] == cast.id("clinician"))
    status, body = await api.post("/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200
    token = body["token"]
    status, me = await api.get("/me", token=token)
    assert status == 200
    assert me["participant"]["id"] == cast.id("clinician")
    assert me["unread_total"] == 0
    assert me["away"]["enabled"] is False
    status, body = await api.post("/auth/login", {"email": email, "password": "wrong password"})
    assert status == 401 and body["error"]["code"] == "invalid_credentials"


async def test_r2_new_clients_follow_the_practice_default(api, cast):
    status, c = await api.post(
        "/clients",
        {
            "name": "New One",
            "email": "n1@example.net",
            "primary_clinician_id": cast.id("clinician"),
            "portal_access": True,
        },
        token=cast.api_key,
    )
    assert status == 201 and c["messaging_enabled"] is False
    await api.patch("/practice/settings", {"auto_enable_new_clients": True}, token=cast.api_key)
    status, c = await api.post(
        "/clients",
        {
            "name": "New Two",
            "email": "n2@example.net",
            "primary_clinician_id": cast.id("clinician"),
            "portal_access": True,
        },
        token=cast.api_key,
    )
    assert status == 201 and c["messaging_enabled"] is True


async def test_r1_settings_order_client_after_team(api, cast):
    status, body = await api.patch(
        "/practice/settings", {"team_messaging_enabled": False}, token=cast.api_key
    )
    assert status == 200
    assert body["client_messaging_enabled"] is False  # cannot stay on while the team's is off
    status, body = await api.patch(
        "/practice/settings", {"client_messaging_enabled": True}, token=cast.api_key
    )
    assert status == 409 and body["error"]["code"] == "team_messaging_off"
    status, body = await open_conv(api, cast, "clinician", "clinician2", body="hello")
    assert status == 403 and body["error"]["rule"] == "R1"


async def test_r3_disabled_team_member_cannot_be_messaged(api, cast):
    await api.patch(
        f"/team-members/{cast.id('clinician2')}", {"messaging_enabled": False}, token=cast.api_key
    )
    status, body = await open_conv(api, cast, "clinician", "clinician2")
    assert status == 403
    assert body["error"] == {
        "code": "team_member_messaging_disabled",
        "message": body["error"]["message"],
        "rule": "R3",
    }
    status, body = await open_conv(api, cast, "clinician2", "clinician")
    assert status == 403 and body["error"]["rule"] == "R3"


async def test_r4_client_messaging_off_revokes_sessions(api, cast):
    status, conv = await open_conv(api, cast, "clinician", "client", body="Hi")
    assert status == 201
    status, _ = await api.get("/me", token=cast.tok("client"))
    assert status == 200
    status, _ = await api.patch(
        f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key
    )
    assert status == 200
    status, body = await api.get("/me", token=cast.tok("client"))
    assert status == 401
    status, body = await api.get("/me", token=cast.tok("contact"))
    assert status == 401
    status, body = await send(api, cast, "clinician", conv["id"], "are you there?")
    assert status == 403 and body["error"]["rule"] == "R4"


async def test_r5_clinician_access_grant_and_withdrawal(api, cast):
    status, body = await open_conv(api, cast, "clinician2", "client", body="hi")
    assert status == 403 and body["error"]["code"] == "clinician_without_client_access"
    status, _ = await api.put(
        f"/clients/{cast.id('client')}/access/{cast.id('clinician2')}", token=cast.api_key
    )
    assert status == 201
    status, conv = await open_conv(api, cast, "clinician2", "client", body="hi")
    assert status == 201
    await api.delete(f"/clients/{cast.id('client')}/access/{cast.id('clinician2')}", token=cast.api_key)
    status, body = await send(api, cast, "clinician2", conv["id"], "again")
    assert status == 403 and body["error"]["rule"] == "R5"


@pytest.mark.parametrize("who", ["biller", "scheduler", "manager"])
async def test_r6_office_roles_message_any_client(api, cast, who):
    status, _ = await open_conv(api, cast, who, "client2", body="About your invoice")
    assert status == 201


async def test_r7_supervisor(api, cast):
    status, body = await open_conv(api, cast, "supervisor", "client", body="hi")
    assert status == 403 and body["error"]["rule"] == "R7"
    await api.put(f"/clients/{cast.id('client')}/access/{cast.id('supervisor')}", token=cast.api_key)
    status, _ = await open_conv(api, cast, "supervisor", "client", body="hi")
    assert status == 201


async def test_r8_client_starts_with_primary_only_and_answers_others(api, cast):
    status, _ = await open_conv(api, cast, "client", "clinician", body="Hello doctor")
    assert status == 201
    await api.put(f"/clients/{cast.id('client')}/access/{cast.id('clinician2')}", token=cast.api_key)
    status, body = await open_conv(api, cast, "client", "clinician2", body="Hi")
    assert status == 403
    assert body["error"]["code"] == "client_may_not_start_with_this_clinician"
    assert body["error"]["rule"] == "R8"
    # Once the other clinician writes first, the client answers in that same exchange (and may return to it).
    status, conv = await open_conv(api, cast, "clinician2", "client", body="I'm covering for Dr. Clinician")
    assert status == 201
    status, _ = await send(api, cast, "client", conv["id"], "Thanks!")
    assert status == 201
    status, again = await open_conv(api, cast, "client", "clinician2")
    assert status == 200 and again["id"] == conv["id"]


async def test_r9_team_members_message_each_other(api, cast):
    status, conv = await open_conv(api, cast, "biller", "clinician", body="Insurance question")
    assert status == 201
    assert {p["id"] for p in conv["participants"]} == {cast.id("biller"), cast.id("clinician")}


async def test_r10_contact_takes_part_in_clients_conversation(api, cast):
    status, conv = await open_conv(api, cast, "clinician", "client", "contact", body="Hello both")
    assert status == 201
    status, _ = await send(api, cast, "contact", conv["id"], "Thanks, from the guardian")
    assert status == 201
    status, body = await open_conv(api, cast, "biller", "client", "client2")
    assert status == 403 and body["error"]["rule"] == "R10"


async def test_r10_a_contact_writes_under_its_clients_flags_when_the_client_is_not_in_it(api, cast):
    """The client's own flags are read for the send even when only its contact is a member (R4, R10)."""
    status, conv = await open_conv(api, cast, "clinician", "contact", body="Hello guardian")
    assert status == 201, conv
    status, body = await send(api, cast, "contact", conv["id"], "Hello back")
    assert status == 201, body
    await api.patch(f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key)
    status, body = await send(api, cast, "clinician", conv["id"], "Still there?")
    assert status == 403 and body["error"]["code"] == "client_messaging_disabled", body


async def test_r11_same_participants_same_exchange(api, cast):
    status, first = await open_conv(api, cast, "clinician", "client")
    assert status == 201
    status, second = await open_conv(api, cast, "client", "clinician")
    assert status == 200 and second["id"] == first["id"]
    status, group = await open_conv(api, cast, "clinician", "client", "contact")
    assert status == 201 and group["id"] != first["id"]


async def test_r12_message_length_limits(api, cast):
    _, conv = await open_conv(api, cast, "clinician", "clinician2")
    status, body = await send(api, cast, "clinician", conv["id"], "x" * 5000)
    assert status == 201 and len(body["message"]["body"]) == 5000
    status, body = await send(api, cast, "clinician", conv["id"], "x" * 5001)
    assert status == 422 and body["error"]["code"] == "message_too_long"
    status, body = await send(api, cast, "clinician", conv["id"], "   \n ")
    assert status == 422 and body["error"]["code"] == "empty_message"
    status, page = await api.get(f"/conversations/{conv['id']}/messages", token=cast.tok("clinician2"))
    assert [len(m["body"]) for m in page["items"]] == [5000]


async def test_r12_idempotent_client_msg_id(api, cast):
    _, conv = await open_conv(api, cast, "clinician", "clinician2")
    s1, first = await send(api, cast, "clinician", conv["id"], "once", client_msg_id="abc-1")
    s2, again = await send(api, cast, "clinician", conv["id"], "once", client_msg_id="abc-1")
    assert (s1, s2) == (201, 200)
    assert again["message"]["id"] == first["message"]["id"]
    _, page = await api.get(f"/conversations/{conv['id']}/messages", token=cast.tok("clinician"))
    assert len(page["items"]) == 1


async def test_r13_emoji_codes_render_and_body_keeps_what_was_typed(api, cast):
    _, conv = await open_conv(api, cast, "clinician", "client")
    status, body = await send(api, cast, "clinician", conv["id"], "Great work :thumbsup: <b>bold</b> :grin:")
    assert status == 201
    msg = body["message"]
    assert msg["body"] == "Great work :thumbsup: <b>bold</b> :grin:"
    assert "\U0001f44d" in msg["body_html"] and "\U0001f601" in msg["body_html"]
    assert "<b>" not in msg["body_html"] and "&lt;b&gt;" in msg["body_html"]


async def test_r14_sender_removes_message_everyone_sees_removal(api, cast):
    _, conv = await open_conv(api, cast, "clinician", "client")
    _, sent = await send(api, cast, "clinician", conv["id"], "PHI for the wrong client")
    mid = sent["message"]["id"]
    status, body = await api.delete(f"/messages/{mid}", token=cast.tok("client"))
    assert status == 403 and body["error"]["rule"] == "R14"
    status, _ = await api.delete(f"/messages/{mid}", token=cast.tok("clinician"))
    assert status == 200
    for who in ("client", "clinician"):
        _, page = await api.get(f"/conversations/{conv['id']}/messages", token=cast.tok(who))
        (item,) = page["items"]
        assert item["body"] is None and item["body_html"] is None
        assert item["removed"]["by"] == cast.id("clinician")
    _, me = await api.get("/me", token=cast.tok("client"))
    assert me["unread_total"] == 0


async def test_r15_unread_counts_per_conversation_and_total(api, cast):
    _, c1 = await open_conv(api, cast, "clinician", "clinician2", body="one")
    _, c2 = await open_conv(api, cast, "biller", "clinician2", body="two")
    _, sent = await send(api, cast, "biller", c2["id"], "three")
    _, me = await api.get("/me", token=cast.tok("clinician2"))
    assert me["unread_total"] == 3
    _, listing = await api.get("/conversations", token=cast.tok("clinician2"))
    counts = {item["id"]: item["unread_count"] for item in listing["items"]}
    assert counts == {c1["id"]: 1, c2["id"]: 2}
    assert listing["items"][0]["id"] == c2["id"]  # newest activity first
    status, body = await api.post(
        f"/conversations/{c2['id']}/read",
        {"up_to_message_id": sent["message"]["id"]},
        token=cast.tok("clinician2"),
    )
    assert status == 200 and body == {"unread_total": 1}
    _, me = await api.get("/me", token=cast.tok("biller"))
    assert me["unread_total"] == 0  # one's own messages are never unread


async def test_conversation_list_pages_by_cursor(api, cast, clock):
    ids = []
    for who in ("clinician2", "biller", "scheduler", "manager", "supervisor"):
        _, conv = await open_conv(api, cast, "clinician", who, body="hi")
        ids.append(conv["id"])
        clock.advance(1)
    seen, cursor = [], None
    while True:
        path = "/conversations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await api.get(path, token=cast.tok("clinician"))
        assert status == 200
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))


async def test_messages_page_oldest_to_newest(api, cast):
    _, conv = await open_conv(api, cast, "clinician", "clinician2")
    for i in range(5):
        await send(api, cast, "clinician", conv["id"], f"m{i}")
    _, page = await api.get(f"/conversations/{conv['id']}/messages?limit=2", token=cast.tok("clinician2"))
    assert [m["body"] for m in page["items"]] == ["m3", "m4"]
    _, older = await api.get(
        f"/conversations/{conv['id']}/messages?limit=2&before={page['next_before']}",
        token=cast.tok("clinician2"),
    )
    assert [m["body"] for m in older["items"]] == ["m1", "m2"]


async def test_r20_away_banner_on_conversation_and_send(api, cast):
    _, conv = await open_conv(api, cast, "clinician", "client", body="hello")
    status, body = await api.put(
        "/me/away", {"enabled": True, "message": "On leave until Monday."}, token=cast.tok("clinician")
    )
    assert status == 200 and body == {"enabled": True, "message": "On leave until Monday."}
    status, detail = await api.get(f"/conversations/{conv['id']}", token=cast.tok("client"))
    assert detail["banner"]["kind"] == "away"
    assert detail["banner"]["participant_id"] == cast.id("clinician")
    assert detail["banner"]["text"] == "On leave until Monday."
    assert next(p for p in detail["participants"] if p["id"] == cast.id("clinician"))["away"] is True
    # The client's message is still delivered, and the answer carries the banner — no automatic reply.
    status, sent = await send(api, cast, "client", conv["id"], "Are you there?")
    assert status == 201 and sent["banner"]["text"] == "On leave until Monday."
    _, page = await api.get(f"/conversations/{conv['id']}/messages", token=cast.tok("clinician"))
    assert [m["body"] for m in page["items"]] == ["hello", "Are you there?"]
    status, body = await api.put(
        "/me/away", {"enabled": True, "message": "x" * 601}, token=cast.tok("clinician")
    )
    assert status == 422 and body["error"]["code"] == "away_message_too_long"
    await api.put("/me/away", {"enabled": False}, token=cast.tok("clinician"))
    _, detail = await api.get(f"/conversations/{conv['id']}", token=cast.tok("client"))
    assert detail["banner"] is None


async def test_recipients_recent_first_and_only_allowed(api, cast):
    await open_conv(api, cast, "clinician2", "biller", body="hi")
    status, body = await api.get("/recipients", token=cast.tok("clinician2"))
    assert status == 200
    ids = [r["id"] for r in body["items"]]
    assert ids[0] == cast.id("biller") and body["items"][0]["recent"] is True
    assert cast.id("client") not in ids  # no access to that client (R5)
    _, body = await api.get("/recipients", token=cast.tok("client"))
    ids = {r["id"] for r in body["items"]}
    assert cast.id("clinician") in ids and cast.id("biller") in ids
    assert cast.id("clinician2") not in ids and cast.id("client2") not in ids
    _, body = await api.get("/recipients?q=Sched", token=cast.tok("clinician"))
    assert [r["id"] for r in body["items"]] == [cast.id("scheduler")]


async def test_other_practice_objects_are_404(api, cast, config, clock):
    from tests.conftest import build_cast

    other = await build_cast(api, config, clock, name="Elsewhere Clinic")
    _, conv = await open_conv(api, cast, "clinician", "client", body="private")
    for path in (f"/conversations/{conv['id']}", f"/conversations/{conv['id']}/messages"):
        status, body = await api.get(path, token=other.tok("owner"))
        assert status == 404 and body["error"]["code"] == "not_found"
    status, _ = await api.patch(
        f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=other.api_key
    )
    assert status == 404
    status, _ = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")]}, token=other.tok("clinician")
    )
    assert status == 404


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "code"),
    [
        ("POST", "/conversations", "not json", 422, "invalid_json"),
        ("POST", "/conversations", [1, 2], 422, "invalid_json"),
        ("POST", "/conversations", {"participant_ids": "7"}, 422, "invalid_field"),
        ("POST", "/conversations", {"participant_ids": ["7"]}, 422, "invalid_field"),
        ("POST", "/conversations", {"participant_ids": [99999999]}, 404, "not_found"),
        ("POST", "/conversations", {"participant_ids": [], "x": 1}, 422, "unknown_field"),
        ("POST", "/conversations", {}, 422, "missing_field"),
        ("POST", "/conversations/abc/messages", {"body": "x"}, 404, "not_found"),
        ("POST", "/conversations/999999/messages", {"body": "x"}, 404, "not_found"),
        ("POST", "/conversations/1/read", {"up_to_message_id": True}, 422, "invalid_field"),
        ("GET", "/conversations?cursor=%%%", None, 422, "invalid_cursor"),
        ("GET", "/conversations?limit=0", None, 422, "invalid_query"),
        ("GET", "/nope", None, 404, "not_found"),
        ("DELETE", "/me", None, 405, "method_not_allowed"),
        ("PUT", "/me/away", {"enabled": "yes"}, 422, "invalid_field"),
    ],
)
async def test_bad_input_gets_a_clear_4xx(api, cast, method, path, payload, status, code):
    kwargs = {}
    if isinstance(payload, str):
        kwargs["data"] = payload
        payload = None
    got, body = await api.call(method, path, payload, cast.tok("clinician"), **kwargs)
    assert got == status, body
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_unauthenticated_and_api_key_on_person_endpoints(api, cast):
    status, body = await api.get("/me")
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    status, body = await api.get("/me", token="forged")
    assert status == 401 and body["error"]["code"] == "invalid_token"
    status, body = await api.get("/me", token=cast.api_key)
    assert status == 403 and body["error"]["code"] == "participant_required"
    status, body = await api.post(
        "/team-members",
        {"name": "X", "email": "x@example.org", "roles": ["biller"]},
        token=cast.tok("clinician"),
    )
    assert status == 403


async def test_oversized_body_is_413(api, cast):
    status, body = await api.call(
        "POST", "/conversations", None, cast.tok("clinician"), data=b"{" + b" " * 300_000 + b"}"
    )
    assert status == 413 and body["error"]["code"] == "request_too_large"


async def test_health_and_ready(api):
    assert (await api.get("/healthz"))[0] == 200
    status, body = await api.get("/readyz")
    assert status == 200 and body["checks"]["database"] is True


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/conversations/99999999999", None),
        ("GET", "/conversations/99999999999/messages", None),
        ("POST", "/conversations/99999999999/messages", {"body": "x"}),
        ("POST", "/conversations", {"participant_ids": [99999999999]}),
        ("DELETE", "/messages/999999999999999", None),
    ],
)
async def test_ids_past_the_column_range_are_404_not_5xx(api, cast, method, path, payload):
    status, body = await api.call(method, path, payload, cast.tok("clinician"))
    assert status == 404, body
    assert body["error"]["code"] == "not_found"


async def test_r15_replying_clears_ones_own_unread_part(api, cast):
    _, conv = await open_conv(api, cast, "biller", "clinician", body="Question about a claim")
    _, me = await api.get("/me", token=cast.tok("clinician"))
    assert me["unread_total"] == 1
    status, _ = await send(api, cast, "clinician", conv["id"], "Answered: it is approved")
    assert status == 201
    _, me = await api.get("/me", token=cast.tok("clinician"))
    assert me["unread_total"] == 0
    _, listing = await api.get("/conversations", token=cast.tok("clinician"))
    assert listing["items"][0]["unread_count"] == 0
    _, me = await api.get("/me", token=cast.tok("biller"))
    assert me["unread_total"] == 1
