"""Apple Push Notification service over HTTP/2 with token (.p8 key) auth, through aioapns 4.

aioapns connects to the host and port named by class attributes of its protocol class, so each provider
builds a small protocol subclass carrying the configured endpoint and hands it to the pool. The subclass
also fixes two things a bounded send needs: a timed-out stream is reset (so it frees its slot and a late
answer is ignored rather than resolving a cancelled future), and the 429 `Retry-After` header is kept.
It also waits for HTTP/2 flow control, and is made cheaper per push (bench/push.py): the frames of a loop
iteration go out in one TLS write, and HPACK literals are not Huffman-coded.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import ssl
import string
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import h2.errors
import h2.exceptions
import hpack
from aioapns import APNs, NotificationRequest, PushType
from aioapns.common import NotificationResult
from aioapns.connection import APNsTLSClientProtocol
from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
from aioapns.exceptions import ConnectionError as ApnsConnectionError
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from push.base import Outcome, PushMessage, PushResult, alert_title, check_message, collect, parse_retry_after

log = logging.getLogger("push.apns")

# Answers that mean this device token will never work for this app again.
DEAD_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "TopicDisallowed", "Unregistered"})
PRIORITY_IMMEDIATE = 10
PRIORITY_POWER_SAVING = 5
_CLOSE_GRACE_S = 2.0
_CONNECTION_ERRORS = (
    ApnsConnectionError,
    ConnectionClosed,
    MaxAttemptsExceeded,
    OSError,
    h2.exceptions.H2Error,
)


@dataclass(frozen=True)
class ApnsSettings:
    key_pem: str = field(repr=False)  # the .p8 key's contents, not its path
    key_id: str
    team_id: str
    topic: str  # the app's bundle id
    endpoint: str = "https://api.push.apple.com"
    timeout_s: float = 10
    max_in_flight: int = 100

    def __post_init__(self) -> None:
        for name in ("key_id", "team_id", "topic"):
            if not getattr(self, name):
                raise ValueError(f"APNs {name} is empty")
        try:
            key = load_pem_private_key(self.key_pem.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("APNs key is not a PEM private key (give the .p8 file's contents)") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("APNs key must be a P-256 (ES256) key")
        parts = urllib.parse.urlsplit(self.endpoint)
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"APNs endpoint must look like https://host[:port], got {self.endpoint!r}")
        try:
            parts.port  # noqa: B018 - a bad port raises here, at start, not on the first push
        except ValueError as exc:
            raise ValueError(f"APNs endpoint has a bad port: {self.endpoint!r}") from exc
        if not self.timeout_s > 0:
            raise ValueError("APNs timeout must be positive")
        if self.max_in_flight < 1:
            raise ValueError("APNs max_in_flight must be at least 1")

    @classmethod
    def from_key_file(cls, key_file: str | Path, **kwargs: Any) -> ApnsSettings:
        """Read the .p8 key file (SECUREMSG_APNS_KEY_FILE) and build settings from its contents."""
        return cls(key_pem=Path(key_file).read_text(), **kwargs)

    @property
    def host(self) -> str:
        host = urllib.parse.urlsplit(self.endpoint).hostname
        assert host is not None  # checked in __post_init__
        return host

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.endpoint).port or 443


class _PlainEncoder(hpack.Encoder):
    """An HPACK encoder that never Huffman-codes literals; the header block decodes to the same headers."""

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return super().encode(headers, huffman=False)


class _EndpointProtocol(APNsTLSClientProtocol):
    """aioapns' client protocol; subclassed per provider with APNS_SERVER / APNS_PORT set."""

    retry_after_sink: ClassVar[dict[str, str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost = asyncio.Event()
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._flush_pending = False
        # Literals go out without Huffman coding (RFC 7541 §5.2 leaves the choice to the encoder). h2 sends
        # the authorization header as a never-indexed literal on every request, so Huffman coding meant
        # coding a ~250-character JWT per push here and decoding it per push at APNs, in pure Python.
        self.conn.encoder = _PlainEncoder()

    async def send_notification(self, request: NotificationRequest) -> NotificationResult:
        """aioapns writes the body without looking at HTTP/2 flow control: with many pushes in flight the
        connection's window (64 KiB until the server widens it) runs out, h2 raises FlowControlError, and
        aioapns retries after a second, then gives up ("Failed to send after 2 attempts"). So wait, in
        order, until a stream and the window are free; aioapns then writes headers and body at once."""
        if self._waiting or not self._room_for(request):
            loop = asyncio.get_running_loop()
            while True:
                turn: asyncio.Future[None] = loop.create_future()
                self._waiting.append(turn)
                await turn
                if self.lost.is_set():
                    raise ConnectionClosed("connection lost while waiting for flow control")
                if self._room_for(request):
                    break
        # The next in line looks once this push has gone out (aioapns writes it before its first await).
        asyncio.get_running_loop().call_soon(self._wake_next)
        return await super().send_notification(request)

    def _room_for(self, request: NotificationRequest) -> bool:
        if self.free_channels.locked():
            return False
        window = self.conn.outbound_flow_control_window
        # h2 sends no body bigger than one frame (FrameTooLargeError), so a window of a frame's size has room
        # for any body that can go at all: only a smaller window needs the body's size, serialised here as
        # aioapns will serialise it (the only other time per push).
        if window >= self.conn.max_outbound_frame_size:
            return True
        return window >= len(json.dumps(request.message, ensure_ascii=False).encode())

    def _wake_next(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # a caller that timed out has left the line
                turn.set_result(None)
                return

    def flush(self) -> None:
        """aioapns flushes after every push it writes and after every read: one TLS record and one send()
        per push. Gather the frames instead and write them once, when the callbacks already queued have run
        (the other pushes woken in the same loop iteration)."""
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_pending = False
        if self.transport is not None and not self.transport.is_closing():
            super().flush()  # refreshes the inactivity timer and writes the frames h2 holds

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # window updates, stream ends and settings arrive here
        self._wake_next()

    def on_response_received(self, headers: dict[bytes, bytes]) -> None:
        value = headers.get(b"retry-after")
        if value is not None:
            notification_id = headers.get(b"apns-id", b"").decode("utf8")
            self.retry_after_sink[notification_id] = value.decode("latin-1")
        super().on_response_received(headers)

    def on_stream_ended(self, stream_id: int) -> None:
        # aioapns forgets the stream of a failed push but not of a delivered one; forget both.
        self.request_streams.pop(stream_id, None)
        super().on_stream_ended(stream_id)

    def abandon(self, notification_id: str) -> None:
        """Give up on a request whose caller timed out."""
        self.requests.pop(notification_id, None)
        self.request_statuses.pop(notification_id, None)
        for stream_id, owner in list(self.request_streams.items()):
            if owner != notification_id:
                continue
            del self.request_streams[stream_id]
            try:
                self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.H2Error:
                continue  # already closed by the server: its slot was released then
            self.free_channels.release()
            if self.transport is not None and not self.transport.is_closing():
                self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        # aioapns fails every pending future here; one already cancelled would raise InvalidStateError.
        for notification_id, future in list(self.requests.items()):
            if future.done():
                del self.requests[notification_id]
        try:
            super().connection_lost(exc)
        finally:
            self.lost.set()
            while self._waiting:
                turn = self._waiting.popleft()
                if not turn.done():
                    turn.set_result(None)


def _protocol_for(settings: ApnsSettings, retry_after_sink: dict[str, str]) -> type[_EndpointProtocol]:
    attrs = {"APNS_SERVER": settings.host, "APNS_PORT": settings.port, "retry_after_sink": retry_after_sink}
    return type("ApnsEndpointProtocol", (_EndpointProtocol,), attrs)


class _EndpointAPNs(APNs):
    def __init__(self, *, protocol_class: type[_EndpointProtocol], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool.protocol_class = protocol_class


def build_payload(msg: PushMessage) -> dict[str, Any]:
    """The APNs JSON body (docs/api.md §5): `aps`, then the caller's ids/link, then `type`."""
    aps: dict[str, Any]
    if msg.push_type == "badge":
        # Silent badge update: an *alert*-type push whose aps holds only the badge, at priority 5.
        # Apple files badge changes under the alert push type. The background type (content-available)
        # is for waking the app: it is throttled hard and dropped for force-quit apps, which would
        # leave a stale badge. With no alert and no sound the user sees only the number change.
        aps = {"badge": msg.badge}
    else:
        aps = {"alert": {"title": alert_title(msg)}}
        if msg.badge is not None:
            aps["badge"] = msg.badge
        aps["sound"] = "default"
    return {"aps": aps, **msg.data, "type": msg.push_type}


_HEX_DIGITS = frozenset(string.hexdigits)


def _check_token(token: str) -> str | None:
    if not token or not _HEX_DIGITS.issuperset(token):
        return "malformed device token (APNs tokens are hex)"
    return None


class ApnsProvider:
    """Sends batches to APNs; construct inside the running loop (aioapns binds to it)."""

    name = "apns"

    def __init__(self, settings: ApnsSettings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        asyncio.get_running_loop()  # fail loudly when built outside a running loop (at import time)
        self.settings = settings
        # Trust follows the system store and SSL_CERT_FILE unless a context is given (tests: a test CA);
        # either way the context is told to offer ALPN "h2".
        context = ssl_context or ssl.create_default_context()
        context.set_alpn_protocols(["h2"])
        self._retry_after: dict[str, str] = {}
        self._client = _EndpointAPNs(
            protocol_class=_protocol_for(settings, self._retry_after),
            key=settings.key_pem,
            key_id=settings.key_id,
            team_id=settings.team_id,
            topic=settings.topic,
            # One quick reconnect for a connection APNs closed while idle; the dispatcher does the rest.
            max_connection_attempts=2,
            ssl_context=context,
            err_func=self._on_rejected,
        )
        self._in_flight = asyncio.Semaphore(settings.max_in_flight)
        self._closed = False

    async def _on_rejected(self, request: NotificationRequest, result: NotificationResult) -> None:
        """Replaces aioapns' own logging of every rejection as an error; `send` sorts and logs them."""

    async def send(self, batch: Sequence[PushMessage]) -> PushResult:
        # No more than max_in_flight pushes are out at once, so that many workers take the batch in order. (A
        # task per push, nearly all of them queued on the semaphore, cost ~10 us a push in bench/push.py.)
        outcomes: list[Outcome | None] = [None] * len(batch)
        todo = iter(enumerate(batch))

        async def worker() -> None:
            for i, msg in todo:
                outcomes[i] = await self._send_one(msg)

        await asyncio.gather(*(worker() for _ in range(min(len(batch), self.settings.max_in_flight))))
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(batch)  # every worker ran until the batch was taken
        return collect(batch, done, log, self.name)

    async def _send_one(self, msg: PushMessage) -> Outcome:
        problem = check_message(msg)
        if problem is None and "aps" in msg.data:
            problem = "data may not use the reserved key 'aps'"
        if problem is not None:
            return Outcome("failed", problem)
        if (bad_token := _check_token(msg.token)) is not None:
            return Outcome("dead", bad_token)
        silent = msg.push_type == "badge"
        request = NotificationRequest(
            device_token=msg.token,
            message=build_payload(msg),
            collapse_key=msg.collapse_key,
            push_type=PushType.ALERT,
            priority=PRIORITY_POWER_SAVING if silent else PRIORITY_IMMEDIATE,
        )
        async with self._in_flight:
            if self._closed:
                return Outcome("retry", "provider closed")
            try:
                async with asyncio.timeout(self.settings.timeout_s):
                    response = await self._client.send_notification(request)
            except TimeoutError:
                self._abandon(request.notification_id)
                return Outcome("retry", f"no answer within {self.settings.timeout_s:g} s")
            except _CONNECTION_ERRORS as exc:
                return Outcome("retry", f"connection: {type(exc).__name__} {exc}".strip())
            except Exception as exc:  # a bug here must not sink the rest of the batch
                log.exception("apns: unexpected error")
                return Outcome("failed", f"unexpected {type(exc).__name__}")
            finally:
                raw_retry_after = self._retry_after.pop(request.notification_id, None)
        return _sort(response, parse_retry_after(raw_retry_after))

    def _abandon(self, notification_id: str) -> None:
        for connection in list(self._client.pool.connections):
            if isinstance(connection, _EndpointProtocol):
                connection.abandon(notification_id)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pool = self._client.pool
        pool.max_connections = 0  # a send still in flight must not open a new connection
        connections = [c for c in pool.connections if isinstance(c, _EndpointProtocol)]
        pool.close()
        # Wait for the TLS shutdowns so no transport outlives the loop ("unclosed transport" warnings).
        try:
            async with asyncio.timeout(_CLOSE_GRACE_S):
                for connection in connections:
                    await connection.lost.wait()
        except TimeoutError:
            for connection in connections:
                if not connection.lost.is_set() and connection.transport is not None:
                    connection.transport.abort()
            await asyncio.sleep(0)


def _sort(response: NotificationResult, retry_after: float | None) -> Outcome:
    status = int(response.status) if response.status.isdigit() else 0
    reason = response.description or ""
    if status == 200:
        return Outcome("delivered")
    if status == 410 or (status == 400 and reason in DEAD_REASONS):
        return Outcome("dead", f"{status} {reason}".strip())
    if status == 429 or 500 <= status <= 599:
        return Outcome("retry", f"{status} {reason}".strip(), retry_after)
    return Outcome("failed", f"{status} {reason}".strip())
