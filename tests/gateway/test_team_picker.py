"""The new-message picker's data (GET /recipients) and "Enable Secure Messaging" by a clinician with access
to the client (PATCH /clients/{id}, R4, R5): who may, what they may change, and the audit row it leaves."""

from __future__ import annotations

from inbox.models import AuditEvent, Participant


async def add_client(api, cast, name, email, *, enabled=True, primary="clinician"):
    status, body = await api.post(
        "/clients",
        {
            "name": name,
            "email": email,
            "primary_clinician_id": cast.id(primary),
            "portal_access": True,
            "messaging_enabled": enabled,
        },
        token=cast.api_key,
    )
    assert status == 201, body
    return body["id"]


async def test_picker_ranks_a_first_name_match_above_a_recent_last_name_match(api, cast):
    alex = await add_client(api, cast, "Alex Morgan", "alex@client.example")
    morgan = await add_client(api, cast, "Morgan Diaz", "mdiaz@client.example")
    status, _ = await api.post(
        "/conversations", {"participant_ids": [alex], "body": "Hello"}, token=cast.tok("clinician")
    )
    assert status == 201
    _, recent = await api.get("/recipients", token=cast.tok("clinician"))
    assert recent["items"][0]["id"] == alex  # with no search, recently messaged first
    _, found = await api.get("/recipients?q=morg", token=cast.tok("clinician"))
    assert [(i["id"], i["recent"]) for i in found["items"]] == [(morgan, False), (alex, True)]
    # Within a rank the recent one stays first.
    _, found = await api.get("/recipients?q=alex", token=cast.tok("clinician"))
    assert found["items"][0]["id"] == alex


async def test_picker_rows_carry_what_tells_people_apart(api, cast):
    _, body = await api.get("/recipients?q=guardian", token=cast.tok("clinician"))
    [guardian] = body["items"]
    assert guardian["kind"] == "contact"
    assert guardian["contact_of"] == {"id": cast.id("client"), "name": "Client Person"}
    assert guardian["email"].startswith("guardian-")
    _, body = await api.get("/recipients?q=biller", token=cast.tok("clinician"))
    assert [(i["roles"], i["email"].startswith("biller-")) for i in body["items"]] == [(["biller"], True)]
    # A client sees the team's names and roles, not their email addresses.
    _, body = await api.get("/recipients?q=clinician", token=cast.tok("client"))
    assert body["items"] and all("email" not in i for i in body["items"])


async def test_r5_a_clinician_with_access_turns_a_clients_messaging_on(api, cast):
    jordan = await add_client(api, cast, "Jordan Lee", "jordan@client.example", enabled=False)
    status, body = await api.patch(
        f"/clients/{jordan}", {"messaging_enabled": True}, token=cast.tok("clinician")
    )
    assert status == 200, body
    assert body["messaging_enabled"] is True
    assert (await Participant.get(id=jordan)).messaging_enabled
    row = await AuditEvent.filter(action="client.update", target_id=str(jordan)).order_by("-seq").first()
    assert row is not None and row.actor_id == cast.id("clinician")
    assert row.detail == {"changed": ["messaging_enabled"], "messaging_enabled": True}
    # And now the picker lists the client as one to message.
    _, found = await api.get("/recipients?q=Jordan", token=cast.tok("clinician"))
    assert [i["id"] for i in found["items"]] == [jordan]


async def test_r5_a_granted_clinician_may_turn_it_on_too(api, cast):
    jordan = await add_client(api, cast, "Jordan Lee", "jordan@client.example", enabled=False)
    status, _ = await api.put(f"/clients/{jordan}/access/{cast.id('clinician2')}", token=cast.api_key)
    assert status == 201
    status, body = await api.patch(
        f"/clients/{jordan}", {"messaging_enabled": True}, token=cast.tok("clinician2")
    )
    assert status == 200, body


async def test_r5_a_clinician_without_access_may_not_turn_it_on(api, cast):
    jordan = await add_client(api, cast, "Jordan Lee", "jordan@client.example", enabled=False)
    status, body = await api.patch(
        f"/clients/{jordan}", {"messaging_enabled": True}, token=cast.tok("clinician2")
    )
    # Not theirs to see, so not found (R28), as for any other call about the client.
    assert status == 404 and body["error"]["code"] == "not_found"
    assert not (await Participant.get(id=jordan)).messaging_enabled
    assert not await AuditEvent.filter(action="client.update", target_id=str(jordan)).exists()


async def test_r4_a_clinician_may_only_turn_messaging_on_and_nothing_else(api, cast):
    client = cast.id("client")
    for change in (
        {"messaging_enabled": False},
        {"portal_access": False},
        {"primary_clinician_id": cast.id("clinician2")},
        {"messaging_enabled": True, "name": "Someone Else"},
    ):
        status, body = await api.patch(f"/clients/{client}", change, token=cast.tok("clinician"))
        assert status == 403, change
        assert body["error"]["code"] == "managers_only"
        assert "can only turn a client's secure messaging on" in body["error"]["message"]
    stored = await Participant.get(id=client)
    assert stored.messaging_enabled and stored.portal_access and stored.name == "Client Person"
    # Billers and schedulers may message any client (R6), but turning a client on is not theirs.
    jordan = await add_client(api, cast, "Jordan Lee", "jordan@client.example", enabled=False)
    for who in ("biller", "scheduler"):
        status, body = await api.patch(f"/clients/{jordan}", {"messaging_enabled": True}, token=cast.tok(who))
        assert status == 403 and body["error"]["code"] == "managers_only", who
    assert not (await Participant.get(id=jordan)).messaging_enabled


async def test_r5_a_clinician_who_is_also_a_biller_still_needs_access(api, cast):
    status, body = await api.patch(
        f"/team-members/{cast.id('clinician2')}", {"roles": ["clinician", "biller"]}, token=cast.api_key
    )
    assert status == 200, body
    jordan = await add_client(api, cast, "Jordan Lee", "jordan@client.example", enabled=False)
    status, body = await api.patch(
        f"/clients/{jordan}", {"messaging_enabled": True}, token=cast.tok("clinician2")
    )
    assert status == 403 and body["error"]["code"] == "clinician_without_client_access"
    assert body["error"]["rule"] == "R5"
    _, found = await api.get("/recipients?q=Jordan&include_disabled=1", token=cast.tok("clinician2"))
    assert [(i["id"], i["can_enable"]) for i in found["items"]] == [(jordan, False)]


async def test_r4_a_conversation_says_when_its_clients_messaging_is_off(api, cast):
    status, opened = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client2")], "body": "Hello"},
        token=cast.tok("clinician"),
    )
    assert status == 201
    conv = opened["id"]
    _, detail = await api.get(f"/conversations/{conv}", token=cast.tok("clinician"))
    assert detail["client_messaging_off"] is None
    await api.patch(f"/clients/{cast.id('client2')}", {"messaging_enabled": False}, token=cast.api_key)
    _, detail = await api.get(f"/conversations/{conv}", token=cast.tok("clinician"))
    assert detail["client_messaging_off"] == {
        "client_id": cast.id("client2"),
        "name": "Client2 Person",
        "can_enable": True,
    }
    # From the thread's button, the same call turns it back on.
    status, _ = await api.patch(
        f"/clients/{cast.id('client2')}", {"messaging_enabled": True}, token=cast.tok("clinician")
    )
    assert status == 200
    _, detail = await api.get(f"/conversations/{conv}", token=cast.tok("clinician"))
    assert detail["client_messaging_off"] is None
