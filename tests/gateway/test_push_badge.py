"""Silent badge updates after a read, and devices leaving with their session (R15, R19)."""

from __future__ import annotations

from inbox import pushes
from inbox.models import Device
from tests.conftest import PASSWORD
from tests.gateway.pushkit import apns_token, config, drain, fcm_token, jobs, register  # noqa: F401


async def sign_in(api, cast, who="clinician"):
    """A new session for a team member, as the mobile app gets one (POST /auth/login)."""
    _, team = await api.get("/team-members", token=cast.api_key)
    email = next(m["email"] for m in team["items"] if m["id"] == cast.id(who))
    status, body = await api.post("/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200, body
    return body["token"]


async def test_r15_reading_on_one_device_sends_a_silent_badge_update_to_the_other(
    client, api, cast, fake_apns, fake_fcm
):
    iphone, android = await sign_in(api, cast), await sign_in(api, cast)
    await register(api, iphone, "apns", apns_token(20))
    await register(api, android, "fcm", fcm_token(20))
    _, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")], "body": "hi"}, token=cast.tok("client")
    )
    await drain(client)
    assert (len(fake_apns.received), len(fake_fcm.received)) == (1, 1)

    # Read on the iPhone: the Android phone's bubble goes to 0, silently; the iPhone gets nothing.
    status, body = await api.post(
        f"/conversations/{conv['id']}/read", {"up_to_message_id": conv["message"]["id"]}, token=iphone
    )
    assert status == 200 and body == {"unread_total": 0}
    await drain(client)
    assert len(fake_apns.received) == 1
    [badge] = fake_fcm.received[1:]
    assert badge.token == fcm_token(20)
    assert badge.message["data"] == {"type": "badge", "badge": "0"}
    assert "notification" not in badge.message  # nothing shown, no sound
    assert badge.message["android"]["priority"] == "normal"

    # A new message, read on the Android phone: now the iPhone gets the badge-only update.
    _, sent = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": "one more"}, token=cast.tok("client")
    )
    await drain(client)
    await api.post(
        f"/conversations/{conv['id']}/read", {"up_to_message_id": sent["message"]["id"]}, token=android
    )
    await drain(client)
    silent = fake_apns.received[-1]
    assert silent.body == {"aps": {"badge": 0}, "type": "badge"}
    assert silent.headers["apns-priority"] == "5"
    assert len(fake_fcm.received) == 3  # hi, one more, and the first badge update: nothing after its own read


async def test_r15_several_reads_before_the_dispatcher_runs_make_one_badge_update(
    client, api, cast, fake_apns, fake_fcm
):
    iphone, web = await sign_in(api, cast), await sign_in(api, cast)
    await register(api, iphone, "apns", apns_token(21))
    _, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")], "body": "a"}, token=cast.tok("client")
    )
    ids = [conv["message"]["id"]]
    for text in ("b", "c"):
        _, sent = await api.post(
            f"/conversations/{conv['id']}/messages", {"body": text}, token=cast.tok("client")
        )
        ids.append(sent["message"]["id"])
    for message_id in ids:  # read one by one on the web, before any push went
        await api.post(f"/conversations/{conv['id']}/read", {"up_to_message_id": message_id}, token=web)
    assert len(await jobs(pushes.PUSH_BADGE)) == 1
    await drain(client)
    # The three new_message pushes were moot (read already); one badge update says 0.
    assert [r.body for r in fake_apns.received] == [{"aps": {"badge": 0}, "type": "badge"}]


async def test_r19_signing_out_removes_the_sessions_devices(client, api, cast, fake_apns, fake_fcm):
    phone = await sign_in(api, cast)
    await register(api, phone, "apns", apns_token(22))
    other = await register(api, cast.tok("clinician"), "fcm", fcm_token(22))
    status, _ = await api.post("/auth/logout", token=phone)
    assert status == 200
    assert not await Device.filter(token=apns_token(22)).exists()
    _, mine = await api.get("/devices", token=cast.tok("clinician"))
    assert [d["id"] for d in mine["items"]] == [other]

    await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")], "body": "hi"}, token=cast.tok("client")
    )
    await drain(client)
    assert fake_apns.received == []
    assert [r.token for r in fake_fcm.received] == [fcm_token(22)]


async def test_r4_a_client_whose_messaging_is_turned_off_gets_no_more_pushes(
    client, api, cast, fake_apns, fake_fcm
):
    await register(api, cast.tok("client"), "fcm", fcm_token(23), app="client")
    status, conv = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client")], "body": "see you Tuesday"},
        token=cast.tok("clinician"),
    )
    assert status == 201
    # Turned off before the dispatcher ran: the session that registered the phone is revoked (R4).
    status, _ = await api.patch(
        f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key
    )
    assert status == 200
    await drain(client)
    assert fake_fcm.received == []
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE, recipient_id=cast.id("client"))
    assert row.status == "skipped"

    # Turned on again: the phone's old session stays revoked, so it gets nothing until the client signs in
    # again and the app registers anew.
    await api.patch(f"/clients/{cast.id('client')}", {"messaging_enabled": True}, token=cast.api_key)
    await api.post(f"/conversations/{conv['id']}/messages", {"body": "reminder"}, token=cast.tok("clinician"))
    await drain(client)
    assert fake_fcm.received == []
    rows = await jobs(pushes.PUSH_NEW_MESSAGE, recipient_id=cast.id("client"))
    assert (rows[-1].status, rows[-1].last_error) == ("skipped", "no device to push to")
