"""Blocked states said up front and live (issue 16): GET /conversations/{id} says why a team member cannot
write there now and who can change it (`blocked`), GET /recipients says who cannot be messaged and why
(`notices`), and `messaging.changed` reaches the people in the conversations a switch concerns (R1, R3, R4,
R26)."""

from __future__ import annotations

from tests.gateway.test_websocket import connect, next_of, nothing_more

MANAGERS = "The account owner or a practice manager can turn it on in Settings."


async def opened(api, cast, who, *others, body="Hello"):
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id(o) for o in others], "body": body}, token=cast.tok(who)
    )
    assert status in (200, 201), conv
    return conv["id"]


async def detail(api, cast, who, conv):
    status, body = await api.get(f"/conversations/{conv}", token=cast.tok(who))
    assert status == 200, body
    return body


async def test_thread_says_why_nobody_can_write_and_who_can_change_it(api, cast):
    team = await opened(api, cast, "clinician", "biller")
    with_client = await opened(api, cast, "clinician", "client")
    assert (await detail(api, cast, "clinician", team))["blocked"] is None

    # A team member's messaging off (R3): named, with who can turn it on; the send is refused the same way.
    await api.patch(f"/team-members/{cast.id('biller')}", {"messaging_enabled": False}, token=cast.api_key)
    blocked = (await detail(api, cast, "clinician", team))["blocked"]
    assert blocked == {
        "code": "team_member_messaging_disabled",
        "rule": "R3",
        "text": f"Secure messaging is off for Biller. {MANAGERS}",
        "participant_id": cast.id("biller"),
    }
    status, refused = await api.post(
        f"/conversations/{team}/messages", {"body": "Hi"}, token=cast.tok("clinician")
    )
    assert status == 403 and refused["error"]["code"] == "team_member_messaging_disabled"

    # Deactivated (R26): said as such, with where to reactivate.
    await api.patch(f"/team-members/{cast.id('biller')}", {"messaging_enabled": True}, token=cast.api_key)
    await api.delete(f"/team-members/{cast.id('biller')}", token=cast.api_key)
    blocked = (await detail(api, cast, "clinician", team))["blocked"]
    assert blocked["code"] == "team_member_deactivated" and blocked["rule"] == "R26"
    assert blocked["text"] == (
        "Biller's account is deactivated, so nobody can write in this conversation. The account owner or a "
        "practice manager can reactivate it in Settings > People."
    )

    # The client's own messaging off (R4) is `client_messaging_off` (with Enable), not said twice.
    await api.patch(f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key)
    got = await detail(api, cast, "clinician", with_client)
    assert got["client_messaging_off"]["client_id"] == cast.id("client") and got["blocked"] is None
    await api.patch(f"/clients/{cast.id('client')}", {"messaging_enabled": True}, token=cast.api_key)

    # The practice's client messaging off (R1).
    await api.patch("/practice/settings", {"client_messaging_enabled": False}, token=cast.api_key)
    blocked = (await detail(api, cast, "clinician", with_client))["blocked"]
    assert blocked == {
        "code": "client_messaging_off",
        "rule": "R1",
        "text": f"Secure messaging with clients is off for this practice. {MANAGERS}",
        "participant_id": None,
    }


async def test_picker_notices_explain_who_cannot_be_messaged(api, cast):
    status, body = await api.get("/recipients?q=Bill", token=cast.tok("clinician"))
    assert status == 200 and body["notices"] == []
    await api.patch(f"/team-members/{cast.id('biller')}", {"messaging_enabled": False}, token=cast.api_key)
    await api.patch("/practice/settings", {"client_messaging_enabled": False}, token=cast.api_key)
    status, body = await api.get("/recipients?q=Bill", token=cast.tok("clinician"))
    assert [i["id"] for i in body["items"]] == []
    assert [(n["code"], n["text"], n["participant_id"]) for n in body["notices"]] == [
        (
            "client_messaging_off",
            f"Secure messaging with clients is off for this practice, so no client is listed. {MANAGERS}",
            None,
        ),
        (
            "team_member_messaging_disabled",
            f"Secure messaging is off for Biller. {MANAGERS}",
            cast.id("biller"),
        ),
    ]
    status, body = await api.get("/recipients", token=cast.tok("client"))
    assert status == 200 and body["notices"] == []


async def test_messaging_changed_reaches_the_people_a_switch_concerns(client, api, cast):
    team = await opened(api, cast, "clinician", "biller")
    await opened(api, cast, "clinician", "client")
    clinician = await connect(client, cast.tok("clinician"))
    contact = await connect(client, cast.tok("contact"))  # in no conversation with the biller or the client
    portal = await connect(client, cast.tok("client"))
    try:
        await api.patch(
            f"/team-members/{cast.id('biller')}", {"messaging_enabled": False}, token=cast.api_key
        )
        assert await next_of(clinician, "messaging.changed") == {"type": "messaging.changed"}
        await api.patch(f"/team-members/{cast.id('biller')}", {"messaging_enabled": True}, token=cast.api_key)
        await next_of(clinician, "messaging.changed")
        await api.delete(f"/team-members/{cast.id('biller')}", token=cast.api_key)
        await next_of(clinician, "messaging.changed")
        assert await nothing_more(contact)
        # A client's switch: the people in that client's conversations.
        await api.patch(f"/clients/{cast.id('client')}", {"portal_access": True}, token=cast.api_key)
        await next_of(clinician, "messaging.changed")
        await next_of(portal, "messaging.changed")
        assert await nothing_more(contact)
        # The practice's switch: everyone in the practice; a change that changes nothing tells nobody.
        await api.patch("/practice/settings", {"client_messaging_enabled": True}, token=cast.api_key)
        assert await nothing_more(clinician)
        await api.patch("/practice/settings", {"client_messaging_enabled": False}, token=cast.api_key)
        for ws in (clinician, contact, portal):
            await next_of(ws, "messaging.changed")
        assert team
    finally:
        for ws in (clinician, contact, portal):
            await ws.close()
