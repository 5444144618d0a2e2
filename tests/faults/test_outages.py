"""SMTP, APNs and FCM down for a while under a real `securemsg serve` (the dispatcher's real clock and
backoff, not a moved test clock): the SMTP server refuses connections and APNs/FCM answer 503/500 while
messages are sent; once they are back, every email and every push arrives, and none twice.

The in-process tests cover the same rules step by step with a moved clock
(tests/gateway/test_notify_email.py::test_smtp_down_for_a_while_every_email_arrives_once_when_back,
tests/gateway/test_push_failures.py::test_r19_503_is_retried_through_the_outbox_and_pushed_once_it_recovers);
this one shows that the process as shipped gets there by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from inbox import outbox, pushes
from inbox.models import OutboxJob
from tests.fakes.apns import ApnsKey, ApnsReply, FakeApns
from tests.fakes.certs import CertPaths
from tests.fakes.fcm import FakeFcm, FcmReply
from tests.fakes.fixtures import APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC
from tests.fakes.smtp import FakeSmtp
from tests.faults.procs import Http, Server, create_practice, make_people, open_conversation, server_env

pytestmark = pytest.mark.slow

OUTAGE_S = 3.0
MESSAGES = 4  # to the clinician (pushes) and to each client (emails)
APNS_TOKEN = "a" * 64
FCM_TOKEN = "fcm-outage-device:APA91b" + "z" * 140


async def test_smtp_apns_and_fcm_down_for_a_while_everything_arrives_once(
    storage: str,
    smtp: FakeSmtp,
    fake_apns: FakeApns,
    fake_fcm: FakeFcm,
    fcm_credentials_file: Path,
    apns_key: ApnsKey,
    tls_certs: CertPaths,
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_text(apns_key.private_pem)
    server = Server(
        server_env(
            storage,
            tmp_path / "var",
            SECUREMSG_SMTP_PORT=str(smtp.port),
            SECUREMSG_APNS_KEY_FILE=str(key_file),
            SECUREMSG_APNS_KEY_ID=APNS_KEY_ID,
            SECUREMSG_APNS_TEAM_ID=APNS_TEAM_ID,
            SECUREMSG_APNS_TOPIC=APNS_TOPIC,
            SECUREMSG_APNS_ENDPOINT=fake_apns.url,
            SECUREMSG_FCM_CREDENTIALS_FILE=str(fcm_credentials_file),
            SECUREMSG_FCM_ENDPOINT=fake_fcm.url,
            SSL_CERT_FILE=str(tls_certs.ca_cert),
        ),
        tmp_path / "logs",
    )
    made = await create_practice(server.env, "owner password 123")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(session, server)
            people = await make_people(http, made, ["clinician", "colleague"], ["ann", "ben"])
            tok, ids = people.tokens, people.ids
            for platform, token in (("apns", APNS_TOKEN), ("fcm", FCM_TOKEN)):
                body = {"platform": platform, "token": token, "app": "practice"}
                await http.ok("POST", "/devices", body, tok["clinician"])
            to_ann = await open_conversation(http, tok["clinician"], ids["ann"])
            to_ben = await open_conversation(http, tok["clinician"], ids["ben"])
            to_clinician = await open_conversation(http, tok["colleague"], ids["clinician"])

            await smtp.stop()  # connections refused from now on, same port later
            fake_apns.reply_all(ApnsReply.service_unavailable())
            fake_fcm.reply_all(FcmReply.internal_error())
            for n in range(MESSAGES):
                for conv, who in ((to_ann, "clinician"), (to_ben, "clinician"), (to_clinician, "colleague")):
                    await http.ok("POST", f"/conversations/{conv}/messages", {"body": f"m{n}"}, tok[who])
            await asyncio.sleep(OUTAGE_S)
            assert smtp.received == []
            assert (
                len(fake_apns.received) >= MESSAGES and len(fake_fcm.received) >= MESSAGES
            )  # tried, refused
            failed_apns, failed_fcm = len(fake_apns.received), len(fake_fcm.received)

            fake_apns.reply_all(ApnsReply.ok())
            fake_fcm.reply_all(FcmReply.ok())
            await smtp.start()

            deadline = time.monotonic() + 30
            while await OutboxJob.filter(
                status="pending", kind__in=[outbox.CLIENT_EMAIL, pushes.PUSH_NEW_MESSAGE]
            ).exists():
                assert time.monotonic() < deadline, "the outbox did not drain after the outage"
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)  # anything sent twice would arrive now

        # Emails (R16): one per client (the later messages are covered by it), each Message-ID once.
        ids_received = Counter(str(m.message["Message-ID"]) for m in smtp.received)
        assert all(n == 1 for n in ids_received.values()), ids_received
        assert sorted(m.rcpt_tos[0] for m in smtp.received) == sorted(
            [people.emails["ann"], people.emails["ben"]]
        )
        # Pushes (R19): after the outage, exactly one per message per device.
        delivered_apns = fake_apns.received[failed_apns:]
        delivered_fcm = fake_fcm.received[failed_fcm:]
        assert [r.token for r in delivered_apns] == [APNS_TOKEN] * MESSAGES
        assert [r.token for r in delivered_fcm] == [FCM_TOKEN] * MESSAGES
        rows = await OutboxJob.filter(kind__in=[outbox.CLIENT_EMAIL, pushes.PUSH_NEW_MESSAGE])
        assert {r.status for r in rows} <= {"done", "skipped"}
        assert any(r.attempts >= 2 for r in rows if r.status == "done")  # they did wait out the outage
        assert server.alive
    finally:
        await server.stop()
