"""New-message pushes end to end (R19, docs/api.md §5): real APNs (HTTP/2 + TLS) and FCM fakes on loopback."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from gateway.keys import CONFIG, CTX, SERVICES
from inbox import links, pushes
from inbox.models import OutboxJob, Participant
from tests.conftest import PASSWORD
from tests.fakes.fixtures import APNS_TOPIC
from tests.gateway.claims import OTHER_WORKER, taken_before_sending
from tests.gateway.pages import email_of, post_sign_in
from tests.gateway.pushkit import (  # noqa: F401
    CANARY,
    apns_token,
    config,
    drain,
    everything_received,
    fcm_token,
    jobs,
    register,
)


async def client_writes(api, cast, body):
    """The client writes to their primary clinician (R8); returns (conversation id, message id)."""
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")], "body": body}, token=cast.tok("client")
    )
    assert status in (200, 201), conv
    return conv["id"], conv["message"]["id"]


async def test_r19_new_message_reaches_apns_and_fcm_once_with_badge_link_and_no_text(
    client, api, cast, fake_apns, fake_fcm
):
    assert set(client.server.app[SERVICES]["push"]) == {"apns", "fcm", "webpush"}
    await register(api, cast.tok("clinician"), "apns", apns_token(1))
    await register(api, cast.tok("clinician"), "fcm", fcm_token(1))

    conv_id, _ = await client_writes(api, cast, CANARY)
    await drain(client)

    [apns] = fake_apns.received
    assert apns.jwt_ok and apns.alpn == "h2"
    assert apns.path == f"/3/device/{apns_token(1)}"
    assert apns.headers["apns-topic"] == APNS_TOPIC
    assert apns.headers["apns-collapse-id"] == f"conversation-{conv_id}"
    assert apns.headers["apns-push-type"] == "alert"
    assert apns.body == {
        "aps": {"alert": {"title": "New secure message"}, "badge": 1, "sound": "default"},
        "type": "new_message",
        "conversation_id": str(conv_id),
        "link": f"securemsg://conversations/{conv_id}",
        "web_link": f"http://127.0.0.1:8080/inbox?conversation={conv_id}",
    }
    [fcm] = fake_fcm.received
    assert fcm.authorized and fcm.token == fcm_token(1)
    assert fcm.message["data"] == {
        "type": "new_message",
        "conversation_id": str(conv_id),
        "link": f"securemsg://conversations/{conv_id}",
        "web_link": f"http://127.0.0.1:8080/inbox?conversation={conv_id}",
        "badge": "1",
    }
    assert fcm.message["notification"] == {"title": "New secure message"}
    assert fcm.message["android"]["collapse_key"] == f"conversation-{conv_id}"

    # A second message: the badge counts both, the collapse id is the same conversation's.
    status, _ = await api.post(
        f"/conversations/{conv_id}/messages", {"body": CANARY + " again"}, token=cast.tok("client")
    )
    assert status == 201
    await drain(client)
    assert [r.body["aps"]["badge"] for r in fake_apns.received] == [1, 2]
    assert [r.message["data"]["badge"] for r in fake_fcm.received] == ["1", "2"]
    assert {r.headers["apns-collapse-id"] for r in fake_apns.received} == {f"conversation-{conv_id}"}

    # Nothing more on another drain: each push went exactly once; the sender got none.
    await drain(client)
    assert (len(fake_apns.received), len(fake_fcm.received)) == (2, 2)
    rows = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert [(r.recipient_id, r.status) for r in rows] == [(cast.id("clinician"), "done")] * 2

    # No text and no names in anything the push services received.
    sent = everything_received(fake_apns, fake_fcm)
    for secret in (CANARY, "CANARY", "Client Person", "Clinician", "Riverbend", "example.net", "example.org"):
        assert secret.encode() not in sent, secret


async def test_r19_a_push_whose_claim_another_worker_took_is_left_to_it(
    client, api, cast, clock, fake_apns, fake_fcm
):
    """Issue #14: the claim on a push row ran out before it was sent (renewals failed for a whole lease)
    and another worker took the row: this worker pushes nothing and leaves the row to that one."""
    await register(api, cast.tok("clinician"), "apns", apns_token(9))
    await register(api, cast.tok("clinician"), "fcm", fcm_token(9))
    taken = taken_before_sending(client, clock, pushes.PUSH_NEW_MESSAGE)
    await client_writes(api, cast, "hello")
    await drain(client)

    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert taken == [row.id]
    assert fake_apns.received == [] and fake_fcm.received == []
    assert (row.status, row.claimed_by, row.attempts) == ("pending", OTHER_WORKER, 0)


async def test_r19_opting_out_of_new_message_stops_those_pushes(client, api, cast, fake_apns, fake_fcm):
    phone = await register(api, cast.tok("clinician"), "apns", apns_token(2))
    tablet = await register(api, cast.tok("clinician"), "fcm", fcm_token(2))
    for device in (phone, tablet):
        status, body = await api.patch(
            f"/devices/{device}", {"alerts": {"new_message": False}}, token=cast.tok("clinician")
        )
        assert status == 200 and body["alerts"]["new_message"] is False
        assert body["alerts"]["appointment"] is True

    await client_writes(api, cast, "hello")
    await drain(client)
    assert fake_apns.received == [] and fake_fcm.received == []
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "skipped" and row.last_error == "no device to push to"

    # Opting back in on one device: only that one gets the next message.
    await api.patch(f"/devices/{phone}", {"alerts": {"new_message": True}}, token=cast.tok("clinician"))
    await client_writes(api, cast, "hello again")
    await drain(client)
    assert [r.token for r in fake_apns.received] == [apns_token(2)]
    assert fake_fcm.received == []


async def test_r15_a_message_read_before_its_push_is_not_pushed(client, api, cast, fake_apns, fake_fcm):
    await register(api, cast.tok("clinician"), "apns", apns_token(3))
    conv_id, msg_id = await client_writes(api, cast, "hello")
    # Read in the web inbox (the session that registered the phone) before the dispatcher ran.
    status, _ = await api.post(
        f"/conversations/{conv_id}/read", {"up_to_message_id": msg_id}, token=cast.tok("clinician")
    )
    assert status == 200
    await drain(client)
    assert fake_apns.received == []
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert (row.status, row.last_error) == ("skipped", "already read")


async def test_r14_a_message_removed_before_its_push_is_not_pushed(client, api, cast, fake_apns):
    await register(api, cast.tok("clinician"), "apns", apns_token(4))
    _, msg_id = await client_writes(api, cast, "sent to the wrong person")
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)  # as a worker holds it, claimed just before the removal
    status, _ = await api.delete(f"/messages/{msg_id}", token=cast.tok("client"))
    assert status == 200
    assert (await OutboxJob.get(id=row.id)).status == "skipped"  # pending rows are cancelled at once
    plans = await pushes.plan_jobs(client.server.app[CTX], [row])
    assert plans[row.id].skip == "message removed"  # and a row already claimed is dropped when handled
    await drain(client)
    assert fake_apns.received == []


async def test_r19_pushes_go_to_every_recipient_but_not_the_sender(client, api, cast, fake_apns, fake_fcm):
    await register(api, cast.tok("clinician"), "apns", apns_token(5))
    await register(api, cast.tok("clinician2"), "fcm", fcm_token(5))
    await register(api, cast.tok("biller"), "apns", apns_token(6))  # the sender's own phone
    status, conv = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("clinician"), cast.id("clinician2")], "body": "team huddle at 3"},
        token=cast.tok("biller"),
    )
    assert status == 201
    await drain(client)
    assert [r.token for r in fake_apns.received] == [apns_token(5)]
    assert [r.token for r in fake_fcm.received] == [fcm_token(5)]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def test_r19_a_push_carries_an_https_web_link_with_no_token_that_opens_the_conversation(
    client, api, cast, fake_apns, fake_fcm
):
    public_url = client.server.app[CONFIG].public_url
    await register(api, cast.tok("client"), "apns", apns_token(7), app="client")
    await register(api, cast.tok("clinician"), "fcm", fcm_token(7))
    status, conv = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client")], "body": CANARY},
        token=cast.tok("clinician"),
    )
    assert status == 201
    conv_id = conv["id"]
    await drain(client)
    status, _ = await api.post(
        f"/conversations/{conv_id}/messages", {"body": CANARY}, token=cast.tok("client")
    )
    assert status == 201
    await drain(client)

    # The client's phone: the portal's conversation page; the clinician's: the web inbox's. Beside the
    # custom-scheme link, and on FCM a string like every other data value.
    [to_client] = fake_apns.received
    [to_clinician] = fake_fcm.received
    client_link = f"{public_url}/portal/c/{conv_id}"
    team_link = f"{public_url}/inbox?conversation={conv_id}"
    assert to_client.body["web_link"] == client_link
    assert to_client.body["link"] == f"securemsg://conversations/{conv_id}"
    assert to_clinician.message["data"]["web_link"] == team_link
    assert to_clinician.message["data"]["link"] == f"securemsg://conversations/{conv_id}"

    # It carries no token: a browser without a session is only sent to sign in, and sees nothing.
    resp = await client.get(_path(client_link), allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].partition("?")[0] == "/portal/sign-in"
    resp = await client.get(_path(team_link), allow_redirects=False)
    assert resp.status in (302, 303)
    assert resp.headers["Location"] == "/?" + urlencode({"next": _path(team_link)})
    assert CANARY not in await resp.text()

    # With the person's own session, the same address opens the conversation.
    person = await Participant.get(id=cast.id("client"))
    emailed = await links.issue_notify_link(client.server.app[CTX], person, None)
    resp = await client.get(_path(emailed), allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/portal"
    resp = await client.get(_path(client_link))
    assert resp.status == 200 and CANARY in await resp.text()
    client.session.cookie_jar.clear()
    resp = await post_sign_in(client, await email_of(cast.id("clinician")), PASSWORD)
    assert resp.status == 303
    resp = await client.get(_path(team_link))
    assert resp.status == 200 and f'data-conversation="{conv_id}"' in await resp.text()
