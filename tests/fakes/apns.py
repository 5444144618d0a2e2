"""FakeApns: a loopback HTTP/2-over-TLS server that answers like APNs (server side of the `h2` package).

It records every request, checks the provider JWT (ES256, `kid`, `iss`) like Apple does, echoes `apns-id`,
and answers each device token as told: 200, 400 BadDeviceToken, 410 Unregistered, 429 TooManyRequests with
`Retry-After`, 503 ServiceUnavailable, a delay, or never (stall).

    certs = make_test_certs(tmp_path)
    key = make_apns_key()
    fake = FakeApns(certs, key_pem=key.public_pem, key_id="KEYID12345", team_id="TEAMID1234")
    await fake.start()
    ... ApnsSettings(key_pem=key.private_pem, ..., endpoint=fake.url) ...
    ... ApnsProvider(settings, ssl_context=certs.client_context()) ...
    await fake.stop()
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes, Settings

from tests.fakes.certs import CertPaths


@dataclass(frozen=True)
class ApnsKey:
    private_pem: str  # what the provider is configured with (a .p8 file's contents)
    public_pem: str  # what the fake verifies with


def make_apns_key() -> ApnsKey:
    """A fresh P-256 key in the shape of an APNs .p8 auth key (PKCS#8 PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return ApnsKey(private_pem, public_pem)


@dataclass(frozen=True)
class ApnsReply:
    status: int = 200
    reason: str | None = None
    retry_after: int | None = None
    timestamp_ms: int | None = None
    delay: float = 0.0  # seconds before answering
    stall: bool = False  # never answer

    @classmethod
    def ok(cls, delay: float = 0.0) -> ApnsReply:
        return cls(delay=delay)

    @classmethod
    def bad_device_token(cls) -> ApnsReply:
        return cls(400, "BadDeviceToken")

    @classmethod
    def unregistered(cls) -> ApnsReply:
        return cls(410, "Unregistered", timestamp_ms=int(time.time() * 1000))

    @classmethod
    def too_many_requests(cls, retry_after: int | None = 30) -> ApnsReply:
        return cls(429, "TooManyRequests", retry_after=retry_after)

    @classmethod
    def service_unavailable(cls) -> ApnsReply:
        return cls(503, "ServiceUnavailable")

    @classmethod
    def stalled(cls) -> ApnsReply:
        return cls(stall=True)


@dataclass
class ApnsRequest:
    method: str
    path: str
    token: str  # from the path /3/device/<token>
    headers: dict[str, str]  # authorization, apns-topic, apns-collapse-id, apns-push-type, apns-priority, ...
    raw_body: bytes
    body: Any  # parsed JSON, or None when the body was not JSON
    jwt_header: dict[str, Any] = field(default_factory=dict)
    jwt_claims: dict[str, Any] = field(default_factory=dict)
    jwt_error: str | None = None  # None: the bearer token was valid
    alpn: str | None = None

    @property
    def jwt_ok(self) -> bool:
        return self.jwt_error is None


class FakeApns:
    def __init__(
        self,
        certs: CertPaths,
        *,
        key_pem: str,
        key_id: str,
        team_id: str,
        topic: str | None = None,
        max_concurrent_streams: int = 1000,
    ) -> None:
        """`key_pem` is the provider key's public (or private) PEM; `topic`, when given, is enforced."""
        self.certs = certs
        loaded: Any = (
            serialization.load_pem_private_key(key_pem.encode(), None).public_key()
            if "PRIVATE KEY" in key_pem
            else serialization.load_pem_public_key(key_pem.encode())
        )
        self._public_key = loaded
        self.key_id = key_id
        self.team_id = team_id
        self.topic = topic
        self.max_concurrent_streams = max_concurrent_streams
        self.default_reply = ApnsReply.ok()
        self.replies: dict[str, ApnsReply] = {}
        self.received: list[ApnsRequest] = []
        self.alpn_protocols: list[str | None] = []  # one per accepted connection
        self.in_flight = 0
        self.max_concurrent = 0  # the most requests open (received, unanswered) at once
        self.resets = 0  # streams the client cancelled
        self._server: asyncio.Server | None = None
        self._connections: set[_H2ServerProtocol] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._activity = asyncio.Event()
        self._verified: dict[str, tuple[dict[str, Any], dict[str, Any], str | None]] = {}
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def auth_failures(self) -> int:
        return sum(1 for r in self.received if not r.jwt_ok)

    def reply_all(self, reply: ApnsReply) -> None:
        self.default_reply = reply

    def reply_to(self, token: str, reply: ApnsReply) -> None:
        self.replies[token] = reply

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _H2ServerProtocol(self),
            "127.0.0.1",
            0,
            ssl=self.certs.server_context(alpn=["h2"]),
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self._connections):
            connection.close()
        await self._server.wait_closed()
        connections = list(self._connections)
        try:
            async with asyncio.timeout(2.0):
                for connection in connections:
                    await connection.lost.wait()
        except TimeoutError:
            for connection in connections:
                connection.abort()
            await asyncio.sleep(0)
        self._server = None

    async def wait_until(self, predicate: Callable[[], bool], within: float = 2.0) -> None:
        """Wait (at most `within` seconds) until `predicate()` holds; it is checked after every request."""
        async with asyncio.timeout(within):
            while not predicate():
                self._activity.clear()
                await self._activity.wait()

    # -- request handling ----------------------------------------------------------------------------

    def _check_jwt(self, authorization: str | None) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        if not authorization:
            return {}, {}, "MissingProviderToken"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return {}, {}, "InvalidProviderToken: not a bearer token"
        # Like APNs, verify a provider token's signature once and remember the verdict (a provider sends
        # the same token for up to an hour); only the age is looked at on every request. An ES256 check per
        # request made the fake, not the client, the ceiling of the push benchmark.
        known = self._verified.get(token)
        if known is None:
            known = self._verify_jwt(token)
            if len(self._verified) >= 1000:
                self._verified.clear()
            self._verified[token] = known
        header, claims, error = known
        if error is None and claims["iat"] < time.time() - 3600:
            return header, claims, "ExpiredProviderToken"
        return header, claims, error

    def _verify_jwt(self, token: str) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, self._public_key, algorithms=["ES256"], options={"require": ["iss", "iat"]}
            )
        except jwt.PyJWTError as exc:
            return {}, {}, f"InvalidProviderToken: {exc}"
        if header.get("alg") != "ES256":
            return header, claims, "InvalidProviderToken: alg"
        if header.get("kid") != self.key_id:
            return header, claims, "InvalidProviderToken: kid"
        if claims.get("iss") != self.team_id:
            return header, claims, "InvalidProviderToken: iss"
        return header, claims, None

    def _handle(
        self, connection: _H2ServerProtocol, stream_id: int, headers: dict[str, str], body: bytes
    ) -> None:
        path = headers.get(":path", "")
        prefix = "/3/device/"
        token = path[len(prefix) :] if path.startswith(prefix) else ""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        jwt_header, claims, jwt_error = self._check_jwt(headers.get("authorization"))
        self.received.append(
            ApnsRequest(
                method=headers.get(":method", ""),
                path=path,
                token=token,
                headers={k: v for k, v in headers.items() if not k.startswith(":")},
                raw_body=body,
                body=parsed,
                jwt_header=jwt_header,
                jwt_claims=claims,
                jwt_error=jwt_error,
                alpn=connection.alpn,
            )
        )
        apns_id = headers.get("apns-id") or str(uuid.uuid4()).upper()
        reply: ApnsReply
        if jwt_error is not None:
            reply = ApnsReply(403, jwt_error.split(":")[0])
        elif headers.get(":method") != "POST":
            reply = ApnsReply(405, "MethodNotAllowed")
        elif not token:
            reply = ApnsReply(404, "BadPath")
        elif self.topic is not None and headers.get("apns-topic") != self.topic:
            reply = ApnsReply(400, "TopicDisallowed")
        elif not isinstance(parsed, dict) or "aps" not in parsed:
            reply = ApnsReply(400, "PayloadEmpty" if not body else "BadPayload")
        else:
            reply = self.replies.get(token, self.default_reply)
        self._activity.set()
        if reply.stall:
            return
        if reply.delay > 0:
            later = self._answer_later(connection, stream_id, apns_id, reply)
            task = asyncio.get_running_loop().create_task(later)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            connection.answer(stream_id, apns_id, reply)

    async def _answer_later(
        self, connection: _H2ServerProtocol, stream_id: int, apns_id: str, reply: ApnsReply
    ) -> None:
        await asyncio.sleep(reply.delay)
        connection.answer(stream_id, apns_id, reply)


class _H2ServerProtocol(asyncio.Protocol):
    def __init__(self, fake: FakeApns) -> None:
        self.fake = fake
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.transport: asyncio.Transport | None = None
        self.alpn: str | None = None
        self.headers: dict[int, dict[str, str]] = {}
        self.bodies: dict[int, bytearray] = {}
        self.open_streams: set[int] = set()  # received and not yet answered or reset
        self.lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        self.alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        self.fake.alpn_protocols.append(self.alpn)
        self.fake._connections.add(self)
        # The stream limit goes out in the first SETTINGS frame and holds from the first request. (Set with
        # update_settings() after the preface instead, h2 would enforce its default of 100 until the client
        # acknowledged the change, and treat a first burst of more than 100 requests as a connection
        # error: the client saw its connection dropped under load.)
        self.conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: self.fake.max_concurrent_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: H2Connection.DEFAULT_MAX_HEADER_LIST_SIZE,
            },
        )
        self.conn.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fake.in_flight -= len(self.open_streams)
        self.open_streams.clear()
        self.fake._connections.discard(self)
        self.fake._activity.set()
        self.lost.set()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self.flush()
            self.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                assert event.stream_id is not None and event.headers is not None
                self.headers[event.stream_id] = {str(k): str(v) for k, v in event.headers}
                self.bodies[event.stream_id] = bytearray()
                self.open_streams.add(event.stream_id)
                self.fake.in_flight += 1
                self.fake.max_concurrent = max(self.fake.max_concurrent, self.fake.in_flight)
            elif isinstance(event, DataReceived):
                assert event.stream_id is not None and event.data is not None
                self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
            elif isinstance(event, StreamEnded):
                assert event.stream_id is not None
                headers = self.headers.pop(event.stream_id, {})
                body = bytes(self.bodies.pop(event.stream_id, b""))
                self.fake._handle(self, event.stream_id, headers, body)
            elif isinstance(event, StreamReset):
                assert event.stream_id is not None
                if event.stream_id in self.open_streams:
                    self.open_streams.discard(event.stream_id)
                    self.fake.in_flight -= 1
                    self.fake.resets += 1
                    self.fake._activity.set()
            elif isinstance(event, ConnectionTerminated):
                self.flush()
                self.close()
                return
        self.flush()

    def answer(self, stream_id: int, apns_id: str, reply: ApnsReply) -> None:
        if stream_id not in self.open_streams:
            return  # reset by the client, or the connection is gone
        self.open_streams.discard(stream_id)
        self.fake.in_flight -= 1
        self.fake._activity.set()
        headers = [(":status", str(reply.status)), ("apns-id", apns_id)]
        if reply.retry_after is not None:
            headers.append(("retry-after", str(reply.retry_after)))
        try:
            if reply.status == 200:
                self.conn.send_headers(stream_id, headers, end_stream=True)
            else:
                payload: dict[str, Any] = {"reason": reply.reason or ""}
                if reply.timestamp_ms is not None:
                    payload["timestamp"] = reply.timestamp_ms
                data = json.dumps(payload).encode()
                headers.append(("content-type", "application/json"))
                headers.append(("content-length", str(len(data))))
                self.conn.send_headers(stream_id, headers)
                self.conn.send_data(stream_id, data, end_stream=True)
        except H2Error:
            return
        self.flush()
