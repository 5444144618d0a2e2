"""Outgoing mail over SMTP: one connection per batch, every failure sorted into temporary or permanent.

Batch policy (what ``Mailer.send_batch`` promises):

* One SMTP connection is opened for the batch and reused for every email in it.
* If that connection is lost (dropped, a 421 "closing channel", a timeout), the email in flight is reported
  *temporary* — the server may or may not have taken it, so the caller retries it later with the same
  Message-ID — and the mailer reconnects **once** for the rest of the batch. If the connection is lost
  again, or the reconnect fails, the remaining emails are reported temporary without being tried, so a
  sick server costs at most two connections and a few timeouts, never one per email.
* A failure to connect at all (refused, timeout, TLS or AUTH failure) makes every email temporary: the
  messages are fine, the transport is not, and configuration problems show up in ``error`` of each outcome.
* A 4xx reply to one email is temporary for that email; a 5xx reply is permanent for that email; either
  way the connection carries on with the next one.
* An email that cannot be built (bad Message-ID, a header with a line break, ...) is permanent.
* ``send_batch`` never raises for SMTP, TLS or network errors, and returns one outcome per email, in order.

STARTTLS is done exactly when ``starttls`` is set: with it set, a server that does not offer STARTTLS is a
failed connection (never a silent downgrade); without it, no upgrade is attempted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

log = logging.getLogger(__name__)

# Headers the mailer sets itself; a caller's ``headers`` may not replace them.
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Message-ID",
        "Date",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    )
)


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 1025
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    use_tls: bool = False  # implicit TLS (port 465 style)
    from_addr: str = "no-reply@localhost"
    timeout_s: float = 15.0
    tls_context: ssl.SSLContext | None = None  # for tests with a test CA; None = system defaults

    def __post_init__(self) -> None:
        # Checked once when the settings are made, so a bad config stops the start with one clear line.
        if self.starttls and self.use_tls:
            raise ValueError("SMTP: choose STARTTLS or implicit TLS, not both")
        if not 0 < self.port < 65536:
            raise ValueError(f"SMTP: port {self.port} is out of range")
        if self.timeout_s <= 0:
            raise ValueError("SMTP: timeout must be positive")
        if self.password is not None and self.username is None:
            raise ValueError("SMTP: a password was given without a username")
        if "@" not in self.from_addr or any(c in self.from_addr for c in "\r\n <>"):
            raise ValueError(f"SMTP: from address {self.from_addr!r} is not a plain address")


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str
    message_id: str  # full "<...@...>" value, derived by the caller from its outbox row, used verbatim
    from_name: str | None = None  # display name, e.g. the practice's name
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendOutcome:
    message_id: str
    ok: bool
    # True: 4xx, connection refused/dropped, timeout -> retry later. False with ok=False: permanent (5xx).
    temporary: bool
    error: str | None


OutcomeCallback = Callable[[int, SendOutcome], Awaitable[None]]
# Asked right before an email goes on the wire; False withdraws it (the caller no longer holds its work).
SendCheck = Callable[[int], Awaitable[bool]]
WITHDRAWN = "not sent: withdrawn by the caller"


def _sent(em: OutgoingEmail) -> SendOutcome:
    return SendOutcome(em.message_id, ok=True, temporary=False, error=None)


def _failed(em: OutgoingEmail, error: str, *, temporary: bool) -> SendOutcome:
    return SendOutcome(em.message_id, ok=False, temporary=temporary, error=error)


def _reply_error(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}".strip()


def _valid_message_id(value: str) -> bool:
    return (
        len(value) > 4
        and value.startswith("<")
        and value.endswith(">")
        and "@" in value
        and not any(c.isspace() or c in "<>" for c in value[1:-1])
    )


def _recipient(msg: EmailMessage) -> str:
    """The one address in the To header (its addr-spec, for the envelope)."""
    header = msg["To"]
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    problems = [d for d in getattr(header, "defects", ()) if not isinstance(d, NonASCIILocalPartDefect)]
    if len(addresses) != 1 or problems or not addresses[0].domain:
        raise ValueError(f"To must be exactly one email address, got {str(header)!r}")
    return str(addresses[0].addr_spec)


class _ConnectionLost(Exception):
    """The connection is unusable after this email; the email's outcome is attached."""

    def __init__(self, outcome: SendOutcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class Mailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    @property
    def settings(self) -> SmtpSettings:
        return self._settings

    def build_message(self, email: OutgoingEmail) -> EmailMessage:
        """The MIME message for ``email``: multipart/alternative text + html and the usual headers.

        Raises ``ValueError`` for a malformed Message-ID, a ``to`` that is not exactly one address, a
        caller header that would replace one the mailer sets, or a header value with a line break.
        """
        if not _valid_message_id(email.message_id):
            raise ValueError(f"Message-ID must look like <local@domain>, got {email.message_id!r}")
        # The default policy refuses header values with CR/LF: that is the header-injection guard.
        msg = EmailMessage()
        msg["From"] = Address(display_name=email.from_name or "", addr_spec=self._settings.from_addr)
        msg["To"] = email.to
        _recipient(msg)  # exactly one well-formed address, or ValueError
        msg["Subject"] = email.subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = email.message_id
        # Notifications must not start out-of-office ping-pong (RFC 3834; the second one is Exchange's).
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        for name, value in email.headers.items():
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the mailer and cannot be overridden")
            del msg[name]
            msg[name] = value
        msg.set_content(email.text)
        msg.add_alternative(email.html, subtype="html")
        return msg

    async def send_batch(
        self,
        emails: Sequence[OutgoingEmail],
        *,
        on_outcome: OutcomeCallback | None = None,
        may_send: SendCheck | None = None,
    ) -> list[SendOutcome]:
        """Send ``emails`` over one connection; one outcome per email, in order. Never raises for
        SMTP or network errors (see the module docstring for the retry rules).

        ``on_outcome(index, outcome)`` is awaited as soon as each email's outcome is known, before the next
        email is tried, so a caller can record "sent" at once: a process killed mid-batch then leaves only
        the email in flight unrecorded, not every email sent before it.

        ``may_send(index)`` is awaited right before each email goes on the wire; when it answers False the
        email is not sent and its outcome is temporary with the error ``WITHDRAWN``."""
        outcomes: list[SendOutcome] = []
        if not emails:
            return outcomes

        async def record(outcome: SendOutcome) -> None:
            outcomes.append(outcome)
            if on_outcome is not None:
                await on_outcome(len(outcomes) - 1, outcome)

        client: aiosmtplib.SMTP | None = None
        connects_left = 2  # the first connection and one reconnect
        gave_up: str | None = None  # once set, the rest of the batch is reported temporary with it
        task = asyncio.current_task()
        try:
            for em in emails:
                if task is not None and task.cancelling():
                    # On Python 3.11, asyncio.wait_for (used by aiosmtplib) swallows a cancel that lands
                    # as a reply arrives; without this check a cancelled batch would run to its end.
                    raise asyncio.CancelledError
                try:
                    message = self.build_message(em)
                except ValueError as exc:
                    await record(_failed(em, f"invalid message: {exc}", temporary=False))
                    continue
                if client is None and gave_up is None:
                    if connects_left == 0:
                        gave_up = "not tried: connection lost twice"
                    else:
                        connects_left -= 1
                        client, error = await self._connect()
                        if client is None:
                            gave_up = error
                if client is None:
                    await record(_failed(em, gave_up or "not connected", temporary=True))
                    continue
                if may_send is not None and not await may_send(len(outcomes)):
                    await record(_failed(em, WITHDRAWN, temporary=True))
                    continue
                try:
                    await record(await self._send_one(client, em, message))
                except _ConnectionLost as lost:
                    client.close()
                    client = None
                    await record(lost.outcome)
        except BaseException:
            # Cancelled (or a bug): do not linger on a polite QUIT.
            if client is not None:
                client.close()
            raise
        if client is not None:
            await self._quit(client)
        return outcomes

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password,
            use_tls=s.use_tls,
            start_tls=s.starttls,
            tls_context=s.tls_context,
            timeout=s.timeout_s,
        )

    async def _connect(self) -> tuple[aiosmtplib.SMTP | None, str]:
        client = self._client()
        where = f"{self._settings.host}:{self._settings.port}"
        try:
            await client.connect()
        except aiosmtplib.SMTPResponseException as exc:
            error = f"connect to {where}: {_reply_error(exc.code, exc.message)}"
        except (aiosmtplib.SMTPException, OSError) as exc:  # OSError: refused, TLS (ssl.SSLError), timeouts
            error = f"connect to {where}: {type(exc).__name__}: {exc}"
        else:
            return client, ""
        client.close()
        log.warning("SMTP %s", error)
        return None, error

    async def _send_one(
        self, client: aiosmtplib.SMTP, em: OutgoingEmail, message: EmailMessage
    ) -> SendOutcome:
        """Outcome of one email; raises ``_ConnectionLost`` (carrying it) when the connection is done for."""
        unusable = False
        try:
            await client.send_message(
                message, sender=self._settings.from_addr, recipients=[_recipient(message)]
            )
            outcome = _sent(em)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # One recipient per email, so "all refused" is that one; its code decides.
            first = exc.recipients[0]
            outcome = _failed(
                em, _reply_error(first.code, first.message), temporary=not 500 <= first.code < 600
            )
        except aiosmtplib.SMTPResponseException as exc:
            outcome = _failed(em, _reply_error(exc.code, exc.message), temporary=not 500 <= exc.code < 600)
        except aiosmtplib.SMTPNotSupported as exc:
            # E.g. a non-ASCII address and a server without SMTPUTF8: retrying will not help.
            outcome = _failed(em, f"not supported by server: {exc}", temporary=False)
        except ValueError as exc:
            # aiosmtplib refuses addresses it cannot put on the wire safely.
            outcome = _failed(em, f"invalid address: {exc}", temporary=False)
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Disconnected, timed out, or a state we cannot trust: the email may or may not have arrived.
            outcome = _failed(em, f"{type(exc).__name__}: {exc}", temporary=True)
            unusable = True
        # aiosmtplib closes its side on a 421 ("closing channel"), a timeout or a lost connection.
        if unusable or not client.is_connected:
            raise _ConnectionLost(outcome)
        return outcome

    @staticmethod
    async def _quit(client: aiosmtplib.SMTP) -> None:
        try:
            if client.is_connected:
                await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            client.close()
