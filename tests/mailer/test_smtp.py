"""Mailer against a real SMTP server on loopback (tests/fakes/smtp.py): assert what was really sent."""

from __future__ import annotations

import asyncio
import email.utils
import socket
from typing import Any

import pytest

from mailer.smtp import Mailer, OutgoingEmail, SendOutcome, SmtpSettings
from tests.fakes.smtp import FakeSmtp, SmtpTestCA

LINK = "http://127.0.0.1:8080/portal/m/q3Yv0xN2bq1mJ8sTeVgK1o3mXb9wZrLpA6cUeDfGhIj"


def outgoing(n: int = 0, *, to: str | None = None, **kw: object) -> OutgoingEmail:
    fields: dict[str, object] = {
        "to": to or f"client{n}@example.org",
        "subject": "You have a new secure message from Harbor Counseling",
        "text": f"A secure message is waiting.\n\n{LINK}\n",
        "html": f'<p>A secure message is waiting.</p><p><a href="{LINK}">Read it</a></p>',
        "message_id": f"<outbox-{n}.7f3a@notify.harbor.test>",
        "from_name": "Harbor Counseling",
    }
    fields.update(kw)
    return OutgoingEmail(**fields)  # type: ignore[arg-type]


def mailer_for(fake: FakeSmtp, **kw: object) -> Mailer:
    settings: dict[str, object] = {"port": fake.port, "from_addr": "no-reply@harbor.test", "timeout_s": 5.0}
    settings.update(kw)
    return Mailer(SmtpSettings(**settings))  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- what goes on the wire ----------------------------------------------------------------------------


async def test_message_on_the_wire(smtp: FakeSmtp) -> None:
    em = outgoing(1, headers={"X-Securemsg-Kind": "client_new_message"})
    [outcome] = await mailer_for(smtp).send_batch([em])

    assert outcome == SendOutcome(em.message_id, ok=True, temporary=False, error=None)
    [got] = smtp.received
    assert got.mail_from == "no-reply@harbor.test"
    assert got.rcpt_tos == ["client1@example.org"]
    raw = got.raw
    assert b"\r\nMessage-ID: <outbox-1.7f3a@notify.harbor.test>\r\n" in b"\r\n" + raw
    assert b"From: Harbor Counseling <no-reply@harbor.test>\r\n" in raw
    assert b"To: client1@example.org\r\n" in raw
    assert b"Subject: You have a new secure message from Harbor Counseling\r\n" in raw
    assert b"Auto-Submitted: auto-generated\r\n" in raw

    msg = got.message
    assert msg["Message-ID"] == em.message_id
    assert msg["X-Securemsg-Kind"] == "client_new_message"
    assert email.utils.parsedate_to_datetime(msg["Date"]).tzinfo is not None
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert LINK in text.get_content()
    assert f'href="{LINK}"' in html.get_content()


async def test_non_ascii_practice_name_is_encoded(smtp: FakeSmtp) -> None:
    em = outgoing(2, from_name="Praxis Müller, Psychotherapie", subject="Neue Nachricht von Praxis Müller")
    [outcome] = await mailer_for(smtp).send_batch([em])

    assert outcome.ok
    msg = smtp.received[0].message
    assert msg["From"].addresses[0].display_name == "Praxis Müller, Psychotherapie"
    assert msg["From"].addresses[0].addr_spec == "no-reply@harbor.test"
    assert msg["Subject"] == "Neue Nachricht von Praxis Müller"
    assert smtp.received[0].raw.isascii()


async def test_display_name_in_to_is_kept_and_envelope_uses_the_address(smtp: FakeSmtp) -> None:
    [outcome] = await mailer_for(smtp).send_batch([outgoing(6, to="Sam Client <sam@example.org>")])

    assert outcome.ok
    assert smtp.received[0].rcpt_tos == ["sam@example.org"]
    assert smtp.received[0].message["To"] == "Sam Client <sam@example.org>"


def test_build_message_without_display_name() -> None:
    msg = Mailer(SmtpSettings(from_addr="no-reply@harbor.test")).build_message(outgoing(3, from_name=None))
    assert msg["From"] == "no-reply@harbor.test"


@pytest.mark.parametrize(
    "bad",
    [
        {"message_id": "outbox-4@notify.harbor.test"},
        {"message_id": "<no-at-sign>"},
        {"subject": "Hello\r\nBcc: victim@example.org"},
        {"headers": {"Subject": "override"}},
        {"from_name": "Harbor\r\nBcc: victim@example.org"},
        {"to": "a@example.org, b@example.org"},
        {"to": "not an address"},
    ],
)
async def test_unbuildable_email_is_permanent_and_batch_goes_on(smtp: FakeSmtp, bad: dict[str, Any]) -> None:
    outcomes = await mailer_for(smtp).send_batch([outgoing(4, **bad), outgoing(5)])

    assert not outcomes[0].ok and not outcomes[0].temporary
    assert outcomes[0].error is not None and outcomes[0].error.startswith("invalid message")
    assert outcomes[1].ok
    assert [m.rcpt_tos for m in smtp.received] == [["client5@example.org"]]


async def test_empty_batch_opens_no_connection(smtp: FakeSmtp) -> None:
    assert await mailer_for(smtp).send_batch([]) == []
    assert smtp.connections == 0


# -- one connection per batch -------------------------------------------------------------------------


async def test_batch_of_five_uses_one_connection(smtp: FakeSmtp) -> None:
    emails = [outgoing(i) for i in range(5)]
    outcomes = await mailer_for(smtp).send_batch(emails)

    assert [o.ok for o in outcomes] == [True] * 5
    assert [o.message_id for o in outcomes] == [e.message_id for e in emails]
    assert smtp.connections == 1
    assert [m.rcpt_tos[0] for m in smtp.received] == [f"client{i}@example.org" for i in range(5)]
    assert [m.message["Message-ID"] for m in smtp.received] == [e.message_id for e in emails]


# -- sorting failures ---------------------------------------------------------------------------------


async def test_each_outcome_is_reported_before_the_next_email_is_tried(smtp: FakeSmtp) -> None:
    seen: list[tuple[int, bool, int]] = []

    async def on_outcome(index: int, outcome: SendOutcome) -> None:
        # What the server had when this email's outcome was known: this one, not the next.
        seen.append((index, outcome.ok, len(smtp.received)))

    smtp.refuse_next(1, 550, at="RCPT")
    outcomes = await mailer_for(smtp).send_batch([outgoing(n) for n in range(3)], on_outcome=on_outcome)
    assert seen == [(0, False, 0), (1, True, 1), (2, True, 2)]
    assert [o.ok for o in outcomes] == [False, True, True]


async def test_451_on_mail_is_temporary_and_connection_is_kept(smtp: FakeSmtp) -> None:
    smtp.refuse_next(1, code=451)
    outcomes = await mailer_for(smtp).send_batch([outgoing(0), outgoing(1)])

    assert outcomes[0].ok is False and outcomes[0].temporary is True
    assert outcomes[0].error is not None and outcomes[0].error.startswith("451")
    assert outcomes[1].ok
    assert smtp.connections == 1


async def test_421_is_temporary(smtp: FakeSmtp) -> None:
    smtp.refuse_next(1, code=421)
    [outcome] = await mailer_for(smtp).send_batch([outgoing(0)])

    assert outcome.ok is False and outcome.temporary is True
    assert outcome.error is not None and outcome.error.startswith("421")
    assert smtp.received == []


async def test_421_closes_the_channel_and_the_mailer_reconnects_once(smtp: FakeSmtp) -> None:
    smtp.refuse_next(1, code=421)
    outcomes = await mailer_for(smtp).send_batch([outgoing(i) for i in range(4)])

    assert [(o.ok, o.temporary) for o in outcomes] == [
        (False, True),
        (True, False),
        (True, False),
        (True, False),
    ]
    assert smtp.connections == 2
    assert len(smtp.received) == 3


async def test_421_on_rcpt_is_temporary_and_the_next_email_gets_a_new_connection(smtp: FakeSmtp) -> None:
    smtp.refuse_next(1, code=421, at="RCPT")
    outcomes = await mailer_for(smtp).send_batch([outgoing(0), outgoing(1)])

    assert [(o.ok, o.temporary) for o in outcomes] == [(False, True), (True, False)]
    assert smtp.connections == 2


async def test_421_on_data_is_temporary(smtp: FakeSmtp) -> None:
    smtp.refuse_next(1, code=421, at="DATA")
    [outcome] = await mailer_for(smtp).send_batch([outgoing(0)])

    assert (outcome.ok, outcome.temporary) == (False, True)
    assert smtp.received == []


async def test_550_recipient_is_permanent_and_batch_goes_on(smtp: FakeSmtp) -> None:
    smtp.refuse_next(1, code=550, at="RCPT", message="5.1.1 No such mailbox")
    outcomes = await mailer_for(smtp).send_batch([outgoing(0), outgoing(1)])

    assert outcomes[0] == SendOutcome(
        "<outbox-0.7f3a@notify.harbor.test>", ok=False, temporary=False, error="550 5.1.1 No such mailbox"
    )
    assert outcomes[1].ok
    assert smtp.connections == 1
    assert [m.rcpt_tos for m in smtp.received] == [["client1@example.org"]]


async def test_554_on_data_is_permanent(smtp: FakeSmtp) -> None:
    smtp.refuse_next(1, code=554, at="DATA")
    outcomes = await mailer_for(smtp).send_batch([outgoing(0), outgoing(1)])

    assert [(o.ok, o.temporary) for o in outcomes] == [(False, False), (True, False)]


async def test_server_down_gives_all_temporary_without_raising() -> None:
    mailer = Mailer(SmtpSettings(port=free_port(), timeout_s=2.0))
    outcomes = await mailer.send_batch([outgoing(i) for i in range(3)])

    assert [(o.ok, o.temporary) for o in outcomes] == [(False, True)] * 3
    assert all(o.error and o.error.startswith("connect to 127.0.0.1:") for o in outcomes)


async def test_server_down_for_a_while_then_back(smtp: FakeSmtp) -> None:
    mailer = mailer_for(smtp)
    await smtp.stop()
    down = await mailer.send_batch([outgoing(0), outgoing(1)])
    await smtp.start()
    up = await mailer.send_batch([outgoing(0), outgoing(1)])

    assert [o.temporary for o in down] == [True, True]
    assert [o.ok for o in up] == [True, True]
    assert len(smtp.received) == 2


async def test_dropped_connection_mid_batch_reconnects_once(smtp: FakeSmtp) -> None:
    emails = [outgoing(i) for i in range(5)]
    smtp.drop_next(1, after=1)  # the 2nd email's connection is cut after its data, before the answer
    outcomes = await mailer_for(smtp).send_batch(emails)

    assert [(o.ok, o.temporary) for o in outcomes] == [(True, False), (False, True)] + [(True, False)] * 3
    assert smtp.connections == 2
    assert [m.message["Message-ID"] for m in smtp.received] == [emails[i].message_id for i in (0, 2, 3, 4)]
    assert len(smtp.dropped) == 1


async def test_dropped_twice_leaves_the_rest_temporary_untried(smtp: FakeSmtp) -> None:
    smtp.drop_next(2)
    outcomes = await mailer_for(smtp).send_batch([outgoing(i) for i in range(5)])

    assert [(o.ok, o.temporary) for o in outcomes] == [(False, True)] * 5
    assert all(o.error == "not tried: connection lost twice" for o in outcomes[2:])
    assert smtp.connections == 2
    assert len(smtp.dropped) == 2
    assert smtp.received == []


async def test_server_hanging_mid_batch_times_out_as_temporary_and_the_rest_go_on(smtp: FakeSmtp) -> None:
    smtp.stall_next(1)
    outcomes = await mailer_for(smtp, timeout_s=0.3).send_batch([outgoing(i) for i in range(3)])

    assert [(o.ok, o.temporary) for o in outcomes] == [(False, True), (True, False), (True, False)]
    assert outcomes[0].error is not None and "Timeout" in outcomes[0].error
    assert smtp.connections == 2


async def test_non_ascii_address_without_smtputf8_is_permanent(smtp: FakeSmtp) -> None:
    outcomes = await mailer_for(smtp).send_batch([outgoing(0, to="zoë@example.org"), outgoing(1)])

    assert [(o.ok, o.temporary) for o in outcomes] == [(False, False), (True, False)]
    assert smtp.connections == 1


async def test_server_that_never_answers_times_out_as_temporary() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcomes = await Mailer(SmtpSettings(port=port, timeout_s=0.2)).send_batch([outgoing(0), outgoing(1)])
    finally:
        server.close()
        for writer in accepted:
            writer.close()
            await writer.wait_closed()
        await server.wait_closed()

    assert [(o.ok, o.temporary) for o in outcomes] == [(False, True), (False, True)]
    assert len(accepted) == 1  # a failed connect is not retried inside the batch


async def test_cancelled_batch_closes_its_connection(smtp: FakeSmtp) -> None:
    task = asyncio.create_task(mailer_for(smtp).send_batch([outgoing(i) for i in range(50)]))
    await smtp.wait_for(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if smtp.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert smtp.open_connections == 0  # the server saw the connection go away
    assert len(smtp.received) < 50


# -- TLS and AUTH -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> SmtpTestCA:
    return SmtpTestCA()


async def test_starttls_and_auth_with_a_test_ca(ca: SmtpTestCA) -> None:
    async with FakeSmtp(
        tls_context=ca.server_context(), require_starttls=True, auth=("harbor", "s3cret")
    ) as fake:
        mailer = mailer_for(
            fake, starttls=True, username="harbor", password="s3cret", tls_context=ca.client_context()
        )
        outcomes = await mailer.send_batch([outgoing(0), outgoing(1)])

    assert [o.ok for o in outcomes] == [True, True]
    assert [(m.tls, m.login) for m in fake.received] == [(True, "harbor"), (True, "harbor")]
    assert fake.connections == 1


async def test_implicit_tls_and_auth(ca: SmtpTestCA) -> None:
    async with FakeSmtp(
        tls_context=ca.server_context(), implicit_tls=True, auth=("harbor", "s3cret")
    ) as fake:
        mailer = mailer_for(
            fake, use_tls=True, username="harbor", password="s3cret", tls_context=ca.client_context()
        )
        [outcome] = await mailer.send_batch([outgoing(0)])

    assert outcome.ok
    assert (fake.received[0].tls, fake.received[0].login) == (True, "harbor")


async def test_auth_on_plain_connection_when_the_server_allows_it() -> None:
    async with FakeSmtp(auth=("harbor", "s3cret"), auth_require_tls=False) as fake:
        [outcome] = await mailer_for(fake, username="harbor", password="s3cret").send_batch([outgoing(0)])

    assert outcome.ok
    assert (fake.received[0].tls, fake.received[0].login) == (False, "harbor")


async def test_wrong_password_is_temporary_for_every_email(ca: SmtpTestCA) -> None:
    async with FakeSmtp(tls_context=ca.server_context(), auth=("harbor", "s3cret")) as fake:
        mailer = mailer_for(
            fake, starttls=True, username="harbor", password="wrong", tls_context=ca.client_context()
        )
        outcomes = await mailer.send_batch([outgoing(0), outgoing(1)])

    assert [(o.ok, o.temporary) for o in outcomes] == [(False, True), (False, True)]
    assert outcomes[0].error is not None and "535" in outcomes[0].error
    assert fake.auth_failures >= 1  # aiosmtplib tries each mechanism the server offers
    assert fake.connections == 1
    assert fake.received == []


async def test_untrusted_certificate_is_refused(ca: SmtpTestCA) -> None:
    other_ca = SmtpTestCA()
    async with FakeSmtp(tls_context=ca.server_context()) as fake:
        mailer = mailer_for(fake, starttls=True, tls_context=other_ca.client_context())
        [outcome] = await mailer.send_batch([outgoing(0)])

    assert (outcome.ok, outcome.temporary) == (False, True)
    assert fake.received == []


async def test_starttls_required_but_not_offered_never_downgrades(smtp: FakeSmtp, ca: SmtpTestCA) -> None:
    [outcome] = await mailer_for(smtp, starttls=True, tls_context=ca.client_context()).send_batch(
        [outgoing(0)]
    )

    assert (outcome.ok, outcome.temporary) == (False, True)
    assert smtp.received == []


async def test_credentials_are_not_sent_in_the_clear(smtp: FakeSmtp) -> None:
    # The plain fake does not offer AUTH without TLS; the mailer must fail rather than skip or force it.
    [outcome] = await mailer_for(smtp, username="harbor", password="s3cret").send_batch([outgoing(0)])

    assert (outcome.ok, outcome.temporary) == (False, True)
    assert smtp.received == []


# -- settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"starttls": True, "use_tls": True},
        {"port": 0},
        {"timeout_s": 0},
        {"password": "x"},
        {"from_addr": "no-reply"},
        {"from_addr": "no-reply@x\r\nBcc: a@b"},
    ],
)
def test_bad_settings_fail_at_once(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="SMTP"):
        SmtpSettings(**kw)  # type: ignore[arg-type]
