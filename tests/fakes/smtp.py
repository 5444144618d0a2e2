"""A real SMTP server on loopback for tests: aiosmtpd in the running event loop (no threads).

It records what it receives and can be told to misbehave. Use it from a test module like this::

    import pytest
    from tests.fakes.smtp import FakeSmtp, SmtpTestCA

    @pytest.fixture
    async def smtp():
        fake = FakeSmtp()                 # plain SMTP on 127.0.0.1, ephemeral port
        await fake.start()
        yield fake
        await fake.stop()

    async def test_something(smtp):
        settings = SmtpSettings(port=smtp.port)
        ...
        await smtp.wait_for(1)            # for mail sent in the background (a dispatcher task)
        assert smtp.received[0].rcpt_tos == ["client@example.org"]
        assert smtp.connections == 1

STARTTLS and AUTH with a throwaway CA (``.port`` is known once started)::

    ca = SmtpTestCA()
    async with FakeSmtp(tls_context=ca.server_context(), require_starttls=True,
                        auth=("user", "secret")) as fake:
        settings = SmtpSettings(port=fake.port, starttls=True, username="user", password="secret",
                                tls_context=ca.client_context())

What it records: ``.received`` (``ReceivedMail``: ``mail_from``, ``rcpt_tos``, ``raw`` bytes, parsed
``message``, ``tls``, ``login``), ``.connections`` (TCP connections accepted), ``.open_connections``,
``.auth_failures`` and ``.dropped`` (the data of messages cut off by ``drop_next``/``stall_next``).

``FakeSmtp(tls_context=..., implicit_tls=True)`` speaks TLS from the first byte (port-465 style).
``FakeSmtp(auth=(...), auth_require_tls=False)`` takes AUTH on a plain connection.

Failure switches:

* ``refuse_next(n, code=421, at="MAIL")`` — the next ``n`` MAIL (or ``RCPT``/``DATA``) commands get ``code``.
  A 421 also closes the connection afterwards, as RFC 5321 says a server does.
* ``drop_next(n, after=0)`` — for the next ``n`` messages (after letting ``after`` through) the connection
  is cut once the data was sent and before the server answers (not recorded; see ``.dropped``).
* ``stall_next(n, after=0)`` — the next ``n`` messages (after letting ``after`` through) get no answer
  after their data (a hung server).
* ``slow_down(seconds)`` — every message is answered that long after its data (a slow relay).
* ``before_answer(callback)`` — ``await callback(mail)`` after a message is recorded and before its 250 is
  sent (a test can break something else just as the server takes an email).
* ``await stop()`` then ``await start()`` — "down for a while": connections are refused, and the server
  comes back on the same port.
"""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.fakes.certs import localhost_ca

WAIT_LIMIT_S = 10.0


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes  # the DATA exactly as received
    message: EmailMessage  # parsed with the default (modern) policy
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    login: str | None  # the AUTH user, if the session authenticated


@dataclass
class _Refusal:
    remaining: int
    code: int
    message: str
    at: str


@dataclass
class _Failures:
    refusals: list[_Refusal] = field(default_factory=list)
    drops: int = 0
    drops_after: int = 0  # messages to let through before the drops start
    stalls: int = 0
    stalls_after: int = 0  # messages to let through before the stalls start
    delay_s: float = 0.0  # before each 250
    before_answer: Callable[[ReceivedMail], Awaitable[None]] | None = None


class _FakeProtocol(SMTP):
    def __init__(self, fake: FakeSmtp, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fake = fake

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # not the STARTTLS re-entry
            self._fake.connections += 1
        super().connection_made(transport)
        self._fake._live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._fake._live.discard(self)
        super().connection_lost(error)


class _Handler:
    def __init__(self, fake: FakeSmtp) -> None:
        self._fake = fake

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refused = self._fake._refusal("MAIL", server)
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refused = self._fake._refusal("RCPT", server)
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fake = self._fake
        raw = envelope.original_content
        assert isinstance(raw, bytes)
        failures = fake._failures
        if failures.drops > 0 and failures.drops_after > 0:
            failures.drops_after -= 1
        elif failures.drops > 0:
            failures.drops -= 1
            fake.dropped.append(raw)
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            # connection_lost cancels this session task; until then, answer nothing.
            await asyncio.Event().wait()
        if failures.stalls > 0 and failures.stalls_after > 0:
            failures.stalls_after -= 1
        elif failures.stalls > 0:
            failures.stalls -= 1
            fake.dropped.append(raw)
            await asyncio.Event().wait()  # never answer; ends when the client gives up and hangs up
        refused = fake._refusal("DATA", server)
        if refused:
            return refused
        transport = server.transport
        auth = session.auth_data  # (session.login_data is deprecated in aiosmtpd and logs on every read)
        if failures.delay_s:
            await asyncio.sleep(failures.delay_s)
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            message=_parse(raw),
            tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
            login=auth.login.decode() if session.authenticated and isinstance(auth, LoginPassword) else None,
        )
        fake.received.append(mail)
        fake._arrived.set()
        if failures.before_answer is not None:
            await failures.before_answer(mail)
        return f"250 OK queued as fake-{len(fake.received)}"


def _parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


class FakeSmtp:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        require_starttls: bool = False,
        auth: tuple[str, str] | None = None,
        auth_require_tls: bool = True,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a tls_context")
        self.host = host
        self.port = port
        self._tls_context = tls_context
        self._implicit_tls = implicit_tls
        self._require_starttls = require_starttls
        self._auth = auth
        self._auth_require_tls = auth_require_tls
        self._server: asyncio.Server | None = None
        self._live: set[_FakeProtocol] = set()
        self._failures = _Failures()
        self.received: list[ReceivedMail] = []
        self.dropped: list[bytes] = []  # DATA of messages whose connection was cut by drop_next
        self._arrived = asyncio.Event()
        self.connections = 0  # TCP connections accepted, over all starts
        self.auth_failures = 0

    # -- switches ---------------------------------------------------------------------------------------

    def refuse_next(
        self, n: int, code: int = 421, *, at: Literal["MAIL", "RCPT", "DATA"] = "MAIL", message: str = ""
    ) -> None:
        text = message or ("4.3.0 Try again later" if 400 <= code < 500 else "5.7.1 Refused")
        self._failures.refusals.append(_Refusal(n, code, text, at))

    def drop_next(self, n: int, *, after: int = 0) -> None:
        """Cut the connection on the next ``n`` messages, once ``after`` more have gone through."""
        self._failures.drops = n
        self._failures.drops_after = after

    def stall_next(self, n: int, *, after: int = 0) -> None:
        """Never answer the data of the next ``n`` messages, once ``after`` more have gone through (the
        client's timeout has to fire, or the client is gone: a process killed mid-send)."""
        self._failures.stalls = n
        self._failures.stalls_after = after

    def slow_down(self, seconds: float) -> None:
        """Answer every message ``seconds`` after its data (a slow relay); 0 for full speed again."""
        self._failures.delay_s = seconds

    def before_answer(self, callback: Callable[[ReceivedMail], Awaitable[None]] | None) -> None:
        """``await callback(mail)`` once each message is recorded, before its 250 goes back."""
        self._failures.before_answer = callback

    def _refusal(self, command: str, server: SMTP) -> str | None:
        for refusal in self._failures.refusals:
            if refusal.at == command and refusal.remaining > 0:
                refusal.remaining -= 1
                if refusal.code == 421:
                    # The reply is written before this callback runs; close() flushes it, then closes.
                    transport = server.transport
                    assert transport is not None
                    asyncio.get_running_loop().call_soon(transport.close)
                return f"{refusal.code} {refusal.message}"
        return None

    async def wait_for(self, count: int) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages were received in all. Gives up with TimeoutError after
        ``WAIT_LIMIT_S`` so a broken test fails instead of hanging; wrap in ``asyncio.timeout`` for less."""
        async with asyncio.timeout(WAIT_LIMIT_S):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received

    # -- lifecycle --------------------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return len(self._live)

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: self._protocol(handler, loop),
            self.host,
            self.port,
            ssl=self._tls_context if self._implicit_tls else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _protocol(self, handler: _Handler, loop: asyncio.AbstractEventLoop) -> _FakeProtocol:
        with warnings.catch_warnings():
            # aiosmtpd warns about AUTH without TLS, which is exactly what auth_require_tls=False asks for.
            warnings.simplefilter("ignore", UserWarning)
            return _FakeProtocol(
                self,
                handler,
                hostname="fake-smtp.test",
                loop=loop,
                # Implicit TLS already encrypts; aiosmtpd must not offer STARTTLS on top of it.
                tls_context=None if self._implicit_tls else self._tls_context,
                require_starttls=self._require_starttls,
                auth_required=self._auth is not None,
                auth_require_tls=self._auth_require_tls and not self._implicit_tls,
                authenticator=self._authenticate if self._auth is not None else None,
                timeout=30,
            )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self._auth is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self._auth
        )
        if not ok:
            self.auth_failures += 1
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def stop(self) -> None:
        """Stop listening and cut every open connection; ``start()`` again reuses the same port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = []
        for proto in list(self._live):
            if proto.transport is not None:
                proto.transport.close()
            task = getattr(proto, "_handler_coroutine", None)
            if task is not None:
                task.cancel()
                tasks.append(task)
        self._live.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> FakeSmtp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SmtpTestCA:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (tests.fakes.certs, from trustme)."""

    def __init__(self) -> None:
        self._ca, self._cert = localhost_ca()
        self.ca_pem = self._ca.cert_pem.bytes().decode()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Trusts only this CA, checks the hostname — what a real client would do."""
        return ssl.create_default_context(cadata=self.ca_pem)
