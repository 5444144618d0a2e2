"""Email notifications through the outbox and a real SMTP server on loopback (R16, R17, R3, R4, R14).

The dispatcher is driven by hand (`drain`) and time by the fake clock; what counts is what the SMTP server
received, byte for byte.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from gateway.dispatcher import Dispatcher
from gateway.keys import CTX, DISPATCHER
from inbox import outbox
from inbox.installation import installation_id
from inbox.models import OutboxJob
from tests.gateway.mail_helpers import (
    PRACTICE,
    PUBLIC_URL,
    drain,
    email_of,
    link_in,
    mail_config,
    message_ids,
    text_of,
    to,
)

CANARY = "CANARY-7f3e9 my panic attacks are worse since the new dose"
DELAY = 600


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


async def open_with(api, cast, sender, others, body=CANARY):
    status, conv = await api.post(
        "/conversations",
        {"participant_ids": [cast.id(o) for o in others], "body": body},
        token=cast.tok(sender),
    )
    assert status == 201, conv
    return conv


async def send(api, cast, sender, conv_id, body=CANARY):
    status, sent = await api.post(
        f"/conversations/{conv_id}/messages", {"body": body}, token=cast.tok(sender)
    )
    assert status == 201, sent
    return sent["message"]


async def rows(kind, **filters):
    return list(await OutboxJob.filter(kind=kind, **filters).order_by("id"))


# --- R16: the client is told at once ------------------------------------------------------------------


async def test_r16_client_gets_one_email_at_once_without_the_message(client, api, cast, smtp):
    conv = await open_with(api, cast, "clinician", ["client"])
    await drain(client)

    address = await email_of(cast.id("client"))
    [mail] = smtp.received
    assert mail.rcpt_tos == [address]
    assert mail.message["Subject"] == f"You have a new secure message from {PRACTICE}"
    assert mail.message["From"].addresses[0].display_name == PRACTICE
    assert mail.message["Auto-Submitted"] == "auto-generated"
    link = link_in(mail)
    assert link.startswith(f"{PUBLIC_URL}/portal/m/")
    # No PHI: not the text, not who wrote it, not the client's own name (R16).
    assert b"CANARY" not in mail.raw and b"panic" not in mail.raw
    assert b"Clinician" not in mail.raw and b"Client Person" not in mail.raw
    [row] = await rows(outbox.CLIENT_EMAIL)
    assert row.status == "done" and row.conversation_id == conv["id"]
    # The Message-ID is derived from the outbox row and this database's id, so a resend is recognisable
    # and a database made anew under the same host does not repeat it.
    installed = await installation_id(client.server.app[CTX])
    assert mail.message["Message-ID"] == f"<outbox-{row.id}.{installed}@portal.test>"
    assert f"<outbox-{row.id}.{installed}@portal.test>" in row.last_error


async def test_r16_r10_contact_in_the_conversation_is_told_too(client, api, cast, smtp):
    await open_with(api, cast, "clinician", ["client", "contact"])
    await drain(client)
    assert len(to(smtp, await email_of(cast.id("client")))) == 1
    assert len(to(smtp, await email_of(cast.id("contact")))) == 1
    assert len(smtp.received) == 2


async def test_r16_team_members_get_no_new_message_email(client, api, cast, smtp):
    await open_with(api, cast, "client", ["clinician"])
    await drain(client)
    assert smtp.received == []
    assert await rows(outbox.CLIENT_EMAIL) == []


async def test_r16_r14_a_removed_message_sends_nothing(client, api, cast, smtp, clock):
    conv = await open_with(api, cast, "clinician", ["client"])
    [row] = await rows(outbox.CLIENT_EMAIL)
    status, _ = await api.delete(f"/messages/{row.message_id}", token=cast.tok("clinician"))
    assert status == 200
    clock.advance(DELAY)
    await drain(client)
    assert smtp.received == []
    assert {r.status for r in await OutboxJob.filter(conversation_id=conv["id"])} == {"skipped"}


async def test_r16_r4_client_turned_off_before_sending_gets_nothing(client, api, cast, smtp):
    await open_with(api, cast, "clinician", ["client"])
    status, _ = await api.patch(
        f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key
    )
    assert status == 200
    await drain(client)
    assert smtp.received == []
    [row] = await rows(outbox.CLIENT_EMAIL)
    assert row.status == "skipped" and "R4" in row.last_error


async def test_r16_several_messages_before_sending_give_one_email(client, api, cast, smtp):
    conv = await open_with(api, cast, "clinician", ["client"])
    await send(api, cast, "clinician", conv["id"], "second")
    await send(api, cast, "clinician", conv["id"], "third")
    await drain(client)
    [mail] = smtp.received
    first = (await rows(outbox.CLIENT_EMAIL))[0]
    installed = await installation_id(client.server.app[CTX])
    assert mail.message["Message-ID"] == f"<outbox-{first.id}.{installed}@portal.test>"
    assert {r.status for r in await rows(outbox.CLIENT_EMAIL)} == {"done"}


# --- R17: unread for the delay -------------------------------------------------------------------------


async def test_r17_unread_message_gives_one_email_after_the_delay(client, api, cast, smtp, clock):
    conv = await open_with(api, cast, "clinician", ["clinician2"])
    await drain(client)
    clock.advance(DELAY - 1)
    await drain(client)
    assert smtp.received == []
    clock.advance(1)
    await drain(client)
    [mail] = smtp.received
    assert mail.rcpt_tos == [await email_of(cast.id("clinician2"))]
    assert mail.message["Subject"] == f"You have an unread secure message from {PRACTICE}"
    assert link_in(mail) == f"{PUBLIC_URL}/inbox?conversation={conv['id']}"
    assert b"CANARY" not in mail.raw
    clock.advance(24 * 3600)
    await drain(client)
    assert len(smtp.received) == 1


async def test_r17_several_unread_messages_give_one_email(client, api, cast, smtp, clock):
    conv = await open_with(api, cast, "clinician", ["clinician2"], "one")
    clock.advance(60)
    await send(api, cast, "clinician", conv["id"], "two")
    clock.advance(60)
    await send(api, cast, "clinician", conv["id"], "three")
    clock.advance(DELAY - 120)  # the first check is due; the others are not yet, but are in its window
    await drain(client)
    [mail] = smtp.received
    assert link_in(mail) == f"{PUBLIC_URL}/inbox?conversation={conv['id']}"
    clock.advance(600)
    await drain(client)
    assert len(smtp.received) == 1
    checks = await rows(outbox.UNREAD_CHECK, recipient_id=cast.id("clinician2"))
    assert [r.status for r in checks] == ["done", "done", "done"]  # settled by the one email
    assert len({r.last_error for r in checks}) == 1


async def test_r17_unread_in_two_conversations_in_one_window_give_one_email_to_the_list(
    client, api, cast, smtp, clock
):
    await open_with(api, cast, "clinician", ["clinician2"], "one")
    clock.advance(300)
    await open_with(api, cast, "supervisor", ["clinician2"], "two")
    clock.advance(DELAY - 300)
    await drain(client)
    [mail] = smtp.received
    assert link_in(mail) == f"{PUBLIC_URL}/inbox"  # about two conversations: the inbox lists both
    clock.advance(3600)
    await drain(client)
    assert len(smtp.received) == 1


async def test_r17_a_message_read_before_the_email_is_not_taken_in(client, api, cast, smtp, clock):
    await open_with(api, cast, "clinician", ["clinician2"], "one")
    clock.advance(300)
    other = await open_with(api, cast, "supervisor", ["clinician2"], "two")
    await api.post(
        f"/conversations/{other['id']}/read",
        {"up_to_message_id": other["message"]["id"]},
        token=cast.tok("clinician2"),
    )
    clock.advance(DELAY - 300)
    await drain(client)
    [mail] = smtp.received
    assert "?conversation=" in link_in(mail)
    clock.advance(300)
    await drain(client)
    assert len(smtp.received) == 1
    checks = await rows(outbox.UNREAD_CHECK, recipient_id=cast.id("clinician2"))
    assert [r.status for r in checks] == ["done", "skipped"]


async def test_r17_rows_taken_in_early_go_back_when_the_email_fails(client, api, cast, smtp, clock):
    conv = await open_with(api, cast, "clinician", ["clinician2"], "one")
    clock.advance(60)
    await send(api, cast, "clinician", conv["id"], "two")
    clock.advance(DELAY - 60)
    smtp.refuse_next(1, 451)
    await drain(client)
    assert smtp.received == []
    first, second = await rows(outbox.UNREAD_CHECK)
    assert first.status == "pending" and first.attempts == 1
    assert second.status == "pending" and second.attempts == 0 and second.claimed_by is None
    clock.advance(60)
    await drain(client)
    assert len(smtp.received) == 1
    assert {r.status for r in await rows(outbox.UNREAD_CHECK)} == {"done"}


async def test_r17_unread_in_two_conversations_claimed_together_give_one_email(
    client, api, cast, smtp, clock
):
    await open_with(api, cast, "clinician", ["clinician2"], "one")
    await open_with(api, cast, "supervisor", ["clinician2"], "two")
    clock.advance(DELAY)
    await drain(client)
    assert [m.rcpt_tos for m in smtp.received] == [[await email_of(cast.id("clinician2"))]]


async def test_r17_reading_in_time_cancels_the_email(client, api, cast, smtp, clock):
    conv = await open_with(api, cast, "clinician", ["clinician2"])
    clock.advance(DELAY - 10)
    status, _ = await api.post(
        f"/conversations/{conv['id']}/read",
        {"up_to_message_id": conv["message"]["id"]},
        token=cast.tok("clinician2"),
    )
    assert status == 200
    clock.advance(10)
    await drain(client)
    assert smtp.received == []
    [row] = await rows(outbox.UNREAD_CHECK)
    assert row.status == "skipped" and row.last_error == "read in time"


async def test_r17_r14_removal_cancels_the_email(client, api, cast, smtp, clock):
    conv = await open_with(api, cast, "clinician", ["clinician2"])
    await api.delete(f"/messages/{conv['message']['id']}", token=cast.tok("clinician"))
    clock.advance(DELAY)
    await drain(client)
    assert smtp.received == []


async def test_r17_r3_recipient_whose_messaging_is_off_gets_nothing(client, api, cast, smtp, clock):
    await open_with(api, cast, "clinician", ["clinician2"])
    status, _ = await api.patch(
        f"/team-members/{cast.id('clinician2')}", {"messaging_enabled": False}, token=cast.api_key
    )
    assert status == 200
    clock.advance(DELAY)
    await drain(client)
    assert smtp.received == []
    [row] = await rows(outbox.UNREAD_CHECK)
    assert "R3" in row.last_error


async def test_r17_practice_delay_is_used(client, api, cast, smtp, clock):
    status, _ = await api.patch("/practice/settings", {"unread_email_delay_s": 1200}, token=cast.api_key)
    assert status == 200
    await open_with(api, cast, "clinician", ["clinician2"])
    clock.advance(DELAY)
    await drain(client)
    assert smtp.received == []
    clock.advance(600)
    await drain(client)
    assert len(smtp.received) == 1


async def test_r16_r17_a_client_is_told_once_per_message(client, api, cast, smtp, clock):
    await open_with(api, cast, "clinician", ["client"])
    await drain(client)
    clock.advance(DELAY)
    await drain(client)
    [mail] = smtp.received
    assert "new secure message" in mail.message["Subject"]
    [check] = await rows(outbox.UNREAD_CHECK)
    assert check.status == "skipped" and "R16" in check.last_error


async def test_r17_client_gets_the_unread_email_when_the_new_message_email_was_given_up(
    client, api, cast, smtp, clock
):
    await open_with(api, cast, "clinician", ["client"])
    smtp.refuse_next(1, 550, at="RCPT")
    await drain(client)
    [first] = await rows(outbox.CLIENT_EMAIL)
    assert first.status == "failed" and "550" in first.last_error
    clock.advance(DELAY)
    await drain(client)
    [mail] = smtp.received
    assert "unread secure message" in mail.message["Subject"]
    assert link_in(mail).startswith(f"{PUBLIC_URL}/portal/m/")


# --- throttle: one email an hour per conversation while unread --------------------------------------


async def test_r17_second_unread_email_for_a_conversation_waits_an_hour_while_unread(
    client, api, cast, smtp, clock
):
    conv = await open_with(api, cast, "clinician", ["clinician2"], "one")
    clock.advance(DELAY)
    await drain(client)
    assert len(smtp.received) == 1  # at 10 min
    clock.advance(600)
    await send(api, cast, "clinician", conv["id"], "two")  # at 20 min, the first still unread
    clock.advance(DELAY)
    await drain(client)  # at 30 min: held back
    assert len(smtp.received) == 1
    held = (await rows(outbox.UNREAD_CHECK))[-1]
    assert held.status == "pending" and held.attempts == 0 and "throttled" in held.last_error
    assert (held.due_at - clock.now()).total_seconds() == 40 * 60  # an hour after the first email
    clock.advance(40 * 60)
    await drain(client)
    assert len(smtp.received) == 2
    assert (await OutboxJob.get(id=held.id)).status == "done"


async def test_r17_a_new_unread_email_goes_at_once_after_the_earlier_one_was_read(
    client, api, cast, smtp, clock
):
    conv = await open_with(api, cast, "clinician", ["clinician2"], "one")
    clock.advance(DELAY)
    await drain(client)
    await api.post(
        f"/conversations/{conv['id']}/read",
        {"up_to_message_id": conv["message"]["id"]},
        token=cast.tok("clinician2"),
    )
    clock.advance(60)
    await send(api, cast, "clinician", conv["id"], "two")
    clock.advance(DELAY)
    await drain(client)
    assert len(smtp.received) == 2


async def test_throttle_is_per_conversation(client, api, cast, smtp, clock):
    await open_with(api, cast, "clinician", ["clinician2"], "one")
    clock.advance(DELAY)
    await drain(client)
    await open_with(api, cast, "supervisor", ["clinician2"], "two")
    clock.advance(DELAY)
    await drain(client)
    assert len(smtp.received) == 2


async def test_r16_a_busy_thread_mails_a_client_at_most_hourly_while_unread(client, api, cast, smtp, clock):
    conv = await open_with(api, cast, "clinician", ["client"], "one")
    await drain(client)
    for n in range(5):
        clock.advance(300)
        await send(api, cast, "clinician", conv["id"], f"more {n}")
        await drain(client)
    assert len(smtp.received) == 1
    clock.advance(3600)
    await drain(client)
    assert len(smtp.received) == 2  # still unread an hour on: one more, covering all five


# --- failures: SMTP down, refusals, a worker killed, two workers ------------------------------------


async def test_smtp_down_for_a_while_every_email_arrives_once_when_back(client, api, cast, smtp, clock):
    await smtp.stop()
    await open_with(api, cast, "clinician", ["client"])
    await open_with(api, cast, "clinician", ["client2"])
    await open_with(api, cast, "clinician", ["clinician2"])
    for _ in range(8):  # about four minutes of a server that refuses connections
        await drain(client)
        clock.advance(30)
    assert smtp.received == []
    pending = await rows(outbox.CLIENT_EMAIL)
    assert all(r.status == "pending" and r.attempts >= 3 and "connect" in r.last_error for r in pending)
    await smtp.start()
    for _ in range(30):
        clock.advance(60)
        await drain(client)
    recipients = sorted(m.rcpt_tos[0] for m in smtp.received)
    assert recipients == sorted(
        [
            await email_of(cast.id("client")),
            await email_of(cast.id("client2")),
            await email_of(cast.id("clinician2")),  # its unread email, 10 minutes on
        ]
    )
    assert len(set(message_ids(smtp))) == len(smtp.received)
    assert {r.status for r in await rows(outbox.CLIENT_EMAIL)} == {"done"}


async def test_temporary_refusal_is_retried_with_backoff(client, api, cast, smtp, clock):
    await open_with(api, cast, "clinician", ["client"])
    smtp.refuse_next(1, 451)
    await drain(client)
    [row] = await rows(outbox.CLIENT_EMAIL)
    assert row.status == "pending" and row.attempts == 1 and row.last_error.startswith("451")
    assert smtp.received == []
    clock.advance(1)
    await drain(client)
    assert len(smtp.received) == 1
    assert (await OutboxJob.get(id=row.id)).status == "done"


async def test_a_worker_killed_mid_batch_loses_nothing_and_sends_no_row_twice(client, api, cast, smtp, clock):
    await open_with(api, cast, "clinician", ["client"])
    await open_with(api, cast, "clinician", ["client2"])
    await open_with(api, cast, "clinician", ["contact"])
    app = client.server.app
    ctx = app[CTX]
    doomed = app[DISPATCHER]
    smtp.stall_next(1, after=1)  # the first email is taken, the second hangs in flight
    task = asyncio.create_task(doomed.drain())
    await smtp.wait_for(1)
    async with asyncio.timeout(10):
        while not smtp.dropped:  # noqa: ASYNC110 - the fake has no event for a stalled message
            await asyncio.sleep(0.01)
    task.cancel()  # the worker dies here
    with pytest.raises(asyncio.CancelledError):
        await task

    statuses = [r.status for r in await rows(outbox.CLIENT_EMAIL)]
    assert statuses.count("done") == 1 and statuses.count("pending") == 2  # the first was recorded at once

    survivor = Dispatcher(ctx)
    survivor.handlers = dict(doomed.handlers)
    assert await survivor.drain() == 0  # the dead worker's claims still hold
    clock.advance(outbox.LEASE_S + 1)
    await survivor.drain()

    ids = message_ids(smtp)
    assert len(ids) == 3 and len(set(ids)) == 3  # each row's email taken exactly once
    assert {r.status for r in await rows(outbox.CLIENT_EMAIL)} == {"done"}
    # The email that was in flight when the worker died went again with the same Message-ID.
    in_flight = [line for line in smtp.dropped[0].split(b"\r\n") if line.startswith(b"Message-ID:")]
    assert in_flight[0].split(b": ", 1)[1].decode() in ids


async def test_two_workers_never_send_the_same_email_twice(client, api, cast, smtp):
    for n in range(16):
        status, made = await api.post(
            "/clients",
            {
                "name": f"Client {n}",
                "email": f"c{n}@example.net",
                "primary_clinician_id": cast.id("clinician"),
                "portal_access": True,
                "messaging_enabled": True,
            },
            token=cast.api_key,
        )
        assert status == 201, made
        status, _ = await api.post(
            "/conversations", {"participant_ids": [made["id"]], "body": CANARY}, token=cast.tok("clinician")
        )
        assert status == 201
    app = client.server.app
    workers = [Dispatcher(app[CTX], batch_size=3) for _ in range(2)]
    for w in workers:
        w.handlers = dict(app[DISPATCHER].handlers)
    await asyncio.gather(*(w.drain() for w in workers))
    ids = message_ids(smtp)
    assert len(ids) == 16 and len(set(ids)) == 16
    assert sorted(m.rcpt_tos[0] for m in smtp.received) == sorted(f"c{n}@example.net" for n in range(16))
    assert all(b"CANARY" not in m.raw for m in smtp.received)


async def test_r16_an_email_whose_claim_another_worker_took_mid_batch_is_left_to_it(
    client, api, cast, smtp, clock, caplog
):
    """Issue #14: the batch's claim ran out while an email was on the wire (its renewals failed for a whole
    lease) and another worker took the rows still waiting. Right before each later email the worker checks
    its claim: those emails are not sent by it, and their rows are left to the other worker untouched."""
    for who in ("client", "client2", "contact"):
        await open_with(api, cast, "clinician", [who])
    ctx = client.server.app[CTX]
    other = "other-host:1:1/taken"
    taken: list[int] = []

    async def another_worker_takes_the_rest(mail):
        if taken:
            return
        sent_row = int(str(mail.message["Message-ID"]).removeprefix("<outbox-").split(".", 1)[0])
        clock.advance(ctx.outbox_lease_s + 1)  # no renewal ran meanwhile: the claim has run out
        rest = OutboxJob.filter(kind=outbox.CLIENT_EMAIL, status="pending").exclude(id=sent_row)
        taken.extend(await rest.values_list("id", flat=True))
        await rest.update(claimed_by=other, claimed_until=clock.now() + timedelta(seconds=ctx.outbox_lease_s))

    smtp.before_answer(another_worker_takes_the_rest)
    with caplog.at_level(logging.WARNING, logger="inbox.outbox"):
        await drain(client)

    assert len(taken) == 2
    [mail] = smtp.received  # the one on the wire went; the two the other worker holds did not
    by_id = {r.id: r for r in await rows(outbox.CLIENT_EMAIL)}
    [sent_row] = set(by_id) - set(taken)
    assert by_id[sent_row].status == "done" and by_id[sent_row].last_error.startswith("sent as <outbox-")
    # The other worker's claim stands: this worker neither settled nor released those rows.
    assert [(by_id[i].status, by_id[i].claimed_by, by_id[i].attempts) for i in taken] == [
        ("pending", other, 0)
    ] * 2
    assert "the claim was taken by another worker or settled; not sent by this one" in caplog.text


async def test_the_emails_text_part_is_plain_and_names_how_long_the_link_works(client, api, cast, smtp):
    await open_with(api, cast, "clinician", ["client"])
    await drain(client)
    text = text_of(smtp.received[0])
    assert "24 hours" in text and PRACTICE in text


async def test_r16_message_ids_do_not_repeat_in_a_database_made_anew_under_the_same_host(
    tmp_path, sqlite_template, clock
):
    """Row ids start again at 1 in a new database; the Message-ID carries the database's own id, so a mail
    provider does not drop or thread the new email as one it has seen. One database keeps its id."""
    import shutil

    from gateway.app import make_context
    from inbox import db, notify
    from tests.conftest import make_config

    config = make_config("sqlite://unused", tmp_path / "var", public_url="https://portal.test")
    ctx = make_context(config, clock)
    made = []
    for n in range(2):
        path = tmp_path / f"recreated-{n}.sqlite3"
        shutil.copyfile(sqlite_template, path)
        await db.connect(f"sqlite://{path}")
        try:
            first = await installation_id(ctx)
            assert await installation_id(ctx) == first  # the same for every resend from this database
            made.append(notify.message_id_for(ctx, 1, first))
        finally:
            await db.disconnect()
    assert made[0] != made[1]
    assert all(m.startswith("<outbox-1.") and m.endswith("@portal.test>") for m in made)
