"""The PHI canary over the whole system: health information never leaves in a notification or a log line.

Messages carrying unique canary strings go through every path — team to team and back, team to a client,
the client's answer from the app and from the portal, a contact in the client's conversation, a message
sent and then removed, an away message, a chart note and an export — with the real loopback SMTP, APNs,
FCM and webhook receivers, every device opted in, the dispatcher drained through the unread-email delay,
and every logger captured at DEBUG. Then everything that left is searched: the raw SMTP data and each
decoded part of each email, every APNs request (path, headers, body), every FCM request and OAuth token
request, every browser (Web Push) notification as the browser decrypts it, with its headers and VAPID claims,
every webhook delivery (headers, body), every log record, and every audit row: no canary, and no client's or
contact's name in any push or webhook.

The test also checks that the canaries did travel where they belong (the recipients read them through the
API), so that finding nothing is not for want of sending anything.
"""

from __future__ import annotations

import json
import uuid
from email.message import EmailMessage

import pytest

from gateway.auth import PORTAL_COOKIE
from gateway.metrics import METRICS
from inbox.models import AuditEvent
from tests.fakes.apns import FakeApns
from tests.fakes.fcm import FakeFcm
from tests.fakes.smtp import FakeSmtp
from tests.fakes.webpush import FakeWebPush
from tests.faults.system import CLIENT_MSG_ID, CSRF, Logs, Receiver, drain, everything_sent, links_in
from tests.gateway.test_push_webpush import subscribe

pytestmark = pytest.mark.slow

MARK = f"PHI{uuid.uuid4().hex[:12]}"


def canary(path: str) -> str:
    return f"{MARK}-{path}: panic attacks since the divorce, sertraline 50mg"


def decoded_parts(mail: EmailMessage) -> str:
    """Every header and every part of an email as a person would read it (base64 / quoted-printable undone)."""
    texts = [f"{k}: {v}" for k, v in mail.items()]
    for part in mail.walk():
        if part.is_multipart():
            continue
        texts.append(str(part.get_content()))
    return "\n".join(texts)


async def register_devices(api, token: str, n: int, app: str) -> None:
    for platform, device in (("apns", f"{n:064x}"), ("fcm", f"fcm-canary-{n}:APA91b" + "c" * 140)):
        status, body = await api.post(
            "/devices", {"platform": platform, "token": device, "app": app}, token=token
        )
        assert status == 201, body


async def test_phi_canary_nothing_leaves_in_notifications_logs_or_audit(
    client,
    api,
    cast,
    clock,
    smtp: FakeSmtp,
    fake_apns: FakeApns,
    fake_fcm: FakeFcm,
    fake_webpush: FakeWebPush,
    receiver: Receiver,
    logs: Logs,
):
    tok, ids = cast.tok, cast.id
    status, _ = await api.post(
        "/webhooks",
        {"url": receiver.url, "events": ["message.created", "message.removed", "conversation.read"]},
        token=cast.api_key,
    )
    assert status == 201
    for n, who in enumerate(("clinician", "clinician2", "client", "contact")):
        await register_devices(api, tok(who), n + 1, "practice" if who.startswith("clinician") else "client")
    for who in ("clinician", "clinician2"):  # and the team's browsers (the web inbox's notifications)
        await subscribe(api, fake_webpush, tok(who))

    async def say(who: str, conversation_id: int, path: str) -> int:
        status, sent = await api.post(
            f"/conversations/{conversation_id}/messages", {"body": canary(path)}, token=tok(who)
        )
        assert status == 201, sent
        return int(sent["message"]["id"])

    async def opened(who: str, others: list[str], path: str) -> int:
        status, conv = await api.post(
            "/conversations",
            {"participant_ids": [ids(o) for o in others], "body": canary(path)},
            token=tok(who),
        )
        assert status == 201, conv
        return int(conv["id"])

    team = await opened("clinician", ["clinician2"], "team-to-team")
    await say("clinician2", team, "team-reply")
    with_client = await opened("clinician", ["client"], "team-to-client")
    await say("client", with_client, "client-to-team-app")
    family = await opened("clinician", ["client", "contact"], "team-to-client-and-contact")
    await say("contact", family, "contact-to-team")
    removed = await say("clinician", with_client, "sent-then-removed")
    assert (await api.delete(f"/messages/{removed}", token=tok("clinician")))[0] == 200
    status, _ = await api.put(
        "/me/away", {"enabled": True, "message": canary("away")}, token=tok("clinician")
    )
    assert status == 200
    await drain(client)

    # The client follows the email's link into the portal and answers there.
    client_email = next(m for m in smtp.received if links_in(m))
    resp = await client.get(links_in(client_email)[0], allow_redirects=False)
    assert resp.status == 303 and PORTAL_COOKIE in resp.cookies
    conversation_page = resp.headers["Location"]
    html = await (await client.get(conversation_page)).text()
    assert canary("team-to-client") in html or canary("team-to-client-and-contact") in html
    resp = await client.post(
        conversation_page,
        data={
            "csrf": CSRF.search(html).group(1),
            "client_msg_id": CLIENT_MSG_ID.search(html).group(1),
            "body": canary("client-to-team-portal"),
        },
        allow_redirects=False,
    )
    assert resp.status == 303

    # Records: a transcript read, a chart note, an export (each audited).
    status, transcript = await api.get(
        f"/clients/{ids('client')}/transcripts?participants={ids('client')},{ids('clinician')}",
        token=tok("clinician"),
    )
    assert status == 200, transcript
    some = [m["id"] for m in transcript["items"]][:2]
    status, note = await api.post(
        f"/clients/{ids('client')}/chart-notes", {"message_ids": some}, token=tok("clinician")
    )
    assert status == 201 and MARK in note["text"]
    status, export = await api.post(
        "/exports", {"scope": "all", "require_password": True}, token=tok("owner")
    )
    assert status == 202

    for step in (0, 600, 3600, 3600):  # new-message emails, then the unread emails (R17), then any repeats
        clock.advance(step)
        await drain(client)

    # The canaries did travel where they belong.
    status, page = await api.get(f"/conversations/{team}/messages", token=tok("clinician2"))
    assert [m["body"] for m in page["items"]] == [canary("team-to-team"), canary("team-reply")]
    status, page = await api.get(f"/conversations/{with_client}/messages", token=tok("client"))
    assert canary("team-to-client") in [m["body"] for m in page["items"]]
    status, page = await api.get(f"/conversations/{family}/messages", token=tok("clinician"))
    assert canary("contact-to-team") in [m["body"] for m in page["items"]]
    # And every channel carried something: this is not a search of nothing.
    told = {m.rcpt_tos[0].split("-")[0] for m in smtp.received}
    assert {"client", "guardian", "clinician"} <= told  # R16 to the client and contact, R17 to the clinician
    assert len(fake_apns.received) >= 4 and len(fake_fcm.received) >= 4
    assert len(fake_webpush.received) >= 2 and fake_webpush.errors == []
    assert len(receiver.bodies) >= 8

    # Nothing that left holds a canary ...
    sent = everything_sent(smtp, fake_apns, fake_fcm, receiver)
    assert MARK.encode() not in sent
    browser_pushes = "\n".join(
        json.dumps([r.payload, r.headers, r.claims], default=str) for r in fake_webpush.received
    ).encode()
    assert MARK.encode() not in browser_pushes
    for mail in smtp.received:
        assert MARK not in decoded_parts(mail.message), mail.message["Subject"]
    # ... nor, in a push or a webhook, the name of a client or contact (nor of anyone: R19).
    status, people = await api.get("/clients", token=cast.api_key)
    names = [p["name"] for p in people["items"]] + ["Guardian", "Clinician", "Clinician2", "Olive Owner"]
    pushes_and_hooks = b"\n".join(
        [r.raw_body for r in fake_apns.received]
        + [json.dumps(r.headers).encode() for r in fake_apns.received]
        + [json.dumps(f.body).encode() for f in fake_fcm.received]
        + receiver.bodies
        + [browser_pushes]
    )
    assert [n for n in names if n.encode() in pushes_and_hooks] == []
    # No log record and no audit row holds a canary.
    assert logs.records
    assert logs.hits([MARK]) == []
    # ... nor the name or email address of a client or contact (each also sought in its JSON form).
    people_items = people["items"]
    assert people_items and all(p["email"] for p in people_items if p.get("email"))
    who = [p["name"] for p in people_items] + [p["email"] for p in people_items if p.get("email")]
    assert logs.hits(who) == []
    # The JSON lines were there to search too (the access lines, with their request ids) ...
    assert any('"route": "/api/v1/conversations/{id}/messages"' in text for _, text in logs.lines())
    # ... and what /metrics shows holds no canary either.
    app = client.server.app
    await app[METRICS].refresh(app)
    assert MARK not in app[METRICS].render().decode()
    audit_rows = [json.dumps(row, default=str) for row in await AuditEvent.all().values()]
    assert audit_rows and [row for row in audit_rows if MARK in row] == []
