"""The built-in development SMTP sink (``securemsg serve --dev-mail``).

An aiosmtpd server created inside the running event loop (no thread, no ``Controller``) that accepts every
message and stores it, unchanged apart from ``Return-Path``/``Delivered-To`` lines on top, in a Maildir.
``list_messages`` and ``get_message`` read that Maildir back for the ``/dev/mail`` page. They do blocking
file I/O; call them through ``asyncio.to_thread`` from a request handler.

It listens on loopback by default and has no authentication: it is for trying the product out locally,
never for production.
"""

from __future__ import annotations

import asyncio
import mailbox
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class StoredMail:
    key: str  # the Maildir key; pass it to get_message
    sender: str  # the From header as written, e.g. 'Practice <no-reply@localhost>'
    to: str  # the To header (the envelope recipients if the message has none)
    subject: str
    date: datetime | None
    message_id: str
    text: str | None  # the text/plain body, decoded
    html: str | None  # the text/html body, decoded


class _MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self._maildir = maildir

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if isinstance(content, str):  # only with decode_data=True, which we do not set
            content = content.encode("utf-8", "surrogateescape")
        top = f"Return-Path: <{envelope.mail_from or ''}>\r\n"
        top += "".join(f"Delivered-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos)
        await asyncio.to_thread(self._store, top.encode("utf-8", "surrogateescape") + content)
        return "250 Message accepted for delivery"

    def _store(self, raw: bytes) -> None:
        _ensure_maildir(self._maildir).add(raw)


def _ensure_maildir(path: Path) -> mailbox.Maildir:
    # mailbox.Maildir(create=True) makes cur/new/tmp only when the directory itself is new; an existing
    # empty directory (say, a freshly made var/mail) would make every add() fail.
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(path, create=False)


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol, remembering its open connections so that ``stop`` can close them."""

    def __init__(self, live: set[_TrackedSMTP], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._live = live

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._live.discard(self)
        super().connection_lost(error)


async def _close_connections(live: set[_TrackedSMTP]) -> None:
    """Close every open aiosmtpd connection in ``live`` and wait for their session tasks to end."""
    tasks = []
    for proto in list(live):
        transport = proto.transport
        if transport is not None:
            transport.close()
        task = getattr(proto, "_handler_coroutine", None)
        if task is not None:
            task.cancel()
            tasks.append(task)
    live.clear()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


class DevMailSink:
    def __init__(self, maildir: Path, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.maildir = Path(maildir)
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._live: set[_TrackedSMTP] = set()

    @property
    def port(self) -> int:
        """The port listened on (the real one once started, also when constructed with port 0)."""
        return self._port

    async def start(self) -> None:
        if self._server is not None:
            return
        await asyncio.to_thread(_ensure_maildir, self.maildir)
        loop = asyncio.get_running_loop()
        handler = _MaildirHandler(self.maildir)
        self._server = await loop.create_server(
            lambda: _TrackedSMTP(self._live, handler, hostname="localhost", enable_SMTPUTF8=True, loop=loop),
            self.host,
            self._port,
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await _close_connections(self._live)
        await server.wait_closed()

    async def __aenter__(self) -> DevMailSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


_KEY_TIME = re.compile(r"^(\d+)\.M(\d+)P\d+Q(\d+)")


def _key_order(key: str) -> tuple[int, int, int, str]:
    # Keys made by mailbox.Maildir.add start with "<seconds>.M<microseconds>P<pid>Q<counter>".
    m = _KEY_TIME.match(key)
    if m is None:
        return (0, 0, 0, key)
    return (int(m[1]), int(m[2]), int(m[3]), key)


def _open(maildir: Path) -> mailbox.Maildir | None:
    path = Path(maildir)
    if not all((path / sub).is_dir() for sub in ("cur", "new")):
        return None  # nothing received yet (the sink makes the Maildir when it starts)
    return mailbox.Maildir(path, create=False)


def _read(box: mailbox.Maildir, key: str) -> StoredMail | None:
    try:
        with box.get_file(key) as fh:
            raw = fh.read()
    except (KeyError, FileNotFoundError):  # unknown key, or removed while we looked
        return None
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return StoredMail(
        key=key,
        sender=str(msg.get("From", "")),
        to=str(msg.get("To", "")) or ", ".join(str(v) for v in msg.get_all("Delivered-To", [])),
        subject=str(msg.get("Subject", "")),
        date=_date(msg.get("Date")),
        message_id=str(msg.get("Message-ID", "")),
        text=_body(msg, "plain"),
        html=_body(msg, "html"),
    )


def _date(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


def _body(msg: EmailMessage, subtype: str) -> str | None:
    part = msg.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken encoding in a hand-made message
        return None
    return content if isinstance(content, str) else None


def list_messages(maildir: Path, limit: int = 100) -> list[StoredMail]:
    """The newest ``limit`` messages in the sink's Maildir, newest first ([] if there is no Maildir)."""
    box = _open(maildir)
    if box is None or limit <= 0:
        return []
    keys = sorted(box.keys(), key=_key_order, reverse=True)[:limit]
    found = (_read(box, key) for key in keys)
    return [m for m in found if m is not None]


def get_message(maildir: Path, key: str) -> StoredMail | None:
    """One message by its Maildir key, or None if there is no such message."""
    box = _open(maildir)
    if box is None:
        return None
    return _read(box, key)
