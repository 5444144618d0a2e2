"""The development SMTP sink: a message sent by Mailer lands in the Maildir and can be read back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailer.devsink import DevMailSink, get_message, list_messages
from mailer.render import TEMPLATES_DIR, EmailRenderer
from mailer.smtp import Mailer, OutgoingEmail, SmtpSettings

LINK = "http://127.0.0.1:8080/portal/m/devsinkToken_0123456789"


def rendered_email(n: int) -> OutgoingEmail:
    out = EmailRenderer(TEMPLATES_DIR).render(
        "client_new_message", {"practice_name": "Harbor Counseling", "link": LINK, "expires_text": "24 hours"}
    )
    return OutgoingEmail(
        to=f"client{n}@example.org",
        subject=out.subject,
        text=out.text,
        html=out.html,
        message_id=f"<outbox-{n}@harbor.test>",
        from_name="Harbor Counseling",
    )


async def test_sink_stores_what_mailer_sends_and_lists_it(tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    async with DevMailSink(maildir, port=0) as sink:
        assert sink.port != 0
        mailer = Mailer(SmtpSettings(port=sink.port, from_addr="no-reply@harbor.test"))
        outcomes = await mailer.send_batch([rendered_email(1), rendered_email(2)])
        assert [o.ok for o in outcomes] == [True, True]

    listed = list_messages(maildir)
    assert [m.to for m in listed] == ["client2@example.org", "client1@example.org"]  # newest first
    newest = listed[0]
    assert newest.sender == "Harbor Counseling <no-reply@harbor.test>"
    assert newest.subject == "You have a new secure message from Harbor Counseling"
    assert newest.message_id == "<outbox-2@harbor.test>"
    assert newest.date is not None
    assert newest.text is not None and LINK in newest.text
    assert newest.html is not None and f'href="{LINK}"' in newest.html

    assert get_message(maildir, newest.key) == newest
    assert list_messages(maildir, limit=1) == [newest]


async def test_sink_keeps_the_envelope(tmp_path: Path) -> None:
    async with DevMailSink(tmp_path, port=0) as sink:
        await Mailer(SmtpSettings(port=sink.port, from_addr="bounce@harbor.test")).send_batch(
            [rendered_email(3)]
        )
    [stored] = list_messages(tmp_path)
    raw = (tmp_path / "new" / stored.key).read_bytes()
    assert raw.startswith(b"Return-Path: <bounce@harbor.test>\r\nDelivered-To: client3@example.org\r\n")


def test_reading_a_missing_maildir_or_key(tmp_path: Path) -> None:
    assert list_messages(tmp_path / "nope") == []
    assert get_message(tmp_path / "nope", "x") is None
    assert list_messages(tmp_path) == []  # a directory, but not (yet) a Maildir
    assert get_message(tmp_path, "../../etc/passwd") is None
    (tmp_path / "box").mkdir()
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "box" / sub).mkdir()
    assert get_message(tmp_path / "box", "../../etc/passwd") is None
    assert list_messages(tmp_path / "box") == []


async def test_stop_closes_open_connections_and_frees_the_port(tmp_path: Path) -> None:
    sink = DevMailSink(tmp_path, port=0)
    await sink.start()
    port = sink.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert (await reader.readline()).startswith(b"220 ")
        await sink.stop()
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # the server hung up
    finally:
        writer.close()
        await writer.wait_closed()
    # The same port can be listened on again at once.
    again = DevMailSink(tmp_path, port=port)
    await again.start()
    await again.stop()
