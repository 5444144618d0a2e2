"""FakeWebPush: a browser push service on loopback (RFC 8030), over TLS with the test CA.

It plays the push service and the browser behind it at once. `subscribe(application_server_key)` makes a
subscription as a browser would: its own P-256 key pair and 16-byte auth secret, an endpoint on this
server, bound to the VAPID key it was made for. Every POST to an endpoint is then checked the way push
services check it, and DECRYPTED the way the browser would:

- VAPID (RFC 8292): `Authorization: vapid t=<JWT>, k=<key>`; `k` must be the key the subscription was made
  for, the JWT an ES256 signature by it, `aud` the endpoint's origin, `exp` in the future and at most 24
  hours away, `sub` a mailto: or https: URI. Otherwise 403, as push services answer.
- the body (RFC 8291, aes128gcm): decrypted here with the subscription's private key and auth secret, by
  this file's own implementation of the RFC (not the library the server encrypts with), so a test that
  reads `payload` proves the server's encryption; `decrypt` is itself checked on the RFC's example.
- headers: `Content-Encoding: aes128gcm` and a `TTL`.

What it was sent is kept in `received` (headers, the raw encrypted body, the decrypted payload, the JWT's
claims, and any `error`). It answers 201 Created, or what it is told per subscription: 404 / 410 for a
subscription gone, 429 with Retry-After, 500, 413.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.fakes.certs import CertPaths


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    mac = hmac.HMAC(salt, hashes.SHA256())
    mac.update(ikm)
    return mac.finalize()


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    # One block is enough for the 12-, 16- and 32-byte outputs RFC 8291 needs.
    mac = hmac.HMAC(prk, hashes.SHA256())
    mac.update(info + b"\x01")
    return mac.finalize()[:length]


class DecryptError(ValueError):
    pass


def decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """RFC 8291 §3.4 and RFC 8188 §2: one aes128gcm record, as a browser opens it."""
    if len(body) < 21:
        raise DecryptError("shorter than the aes128gcm header")
    salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    keyid, ciphertext = body[21 : 21 + idlen], body[21 + idlen :]
    if idlen != 65:
        raise DecryptError(f"the key id must be the sender's 65-byte public key, not {idlen} bytes")
    if len(ciphertext) > rs or len(ciphertext) < 17:
        raise DecryptError("a push message is exactly one record")
    as_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), keyid)
    ecdh_secret = ua_private.exchange(ec.ECDH(), as_public)
    key_info = b"WebPush: info\x00" + _point(ua_private.public_key()) + keyid
    ikm = _hkdf_expand(_hkdf_extract(auth_secret, ecdh_secret), key_info, 32)
    prk = _hkdf_extract(salt, ikm)
    cek = _hkdf_expand(prk, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf_expand(prk, b"Content-Encoding: nonce\x00", 12)
    try:
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
    except Exception as exc:
        raise DecryptError(f"AES-GCM refused the record: {type(exc).__name__}") from exc
    stripped = padded.rstrip(b"\x00")
    if not stripped.endswith(b"\x02"):
        raise DecryptError("the last record must end with the 0x02 delimiter")
    return stripped[:-1]


@dataclass
class FakeSubscription:
    id: str
    endpoint: str
    application_server_key: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    auth: bytes = field(repr=False)

    @property
    def p256dh(self) -> str:
        return b64url(_point(self.private_key.public_key()))

    def to_json(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives in a browser."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }


@dataclass(frozen=True)
class PushReply:
    status: int = 201
    retry_after: int | None = None
    body: str = ""


@dataclass
class PushRequest:
    subscription_id: str
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


_SUB = re.compile(r"(mailto:[^@\s]+@\S+|https://\S+)")


class FakeWebPush:
    def __init__(self, certs: CertPaths, *, now: Callable[[], float] = time.time) -> None:
        self.certs = certs
        self.now = now
        self.subscriptions: dict[str, FakeSubscription] = {}
        self.replies: dict[str, PushReply] = {}
        self.received: list[PushRequest] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._activity = asyncio.Event()
        self.port = 0

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def errors(self) -> list[str]:
        return [f"{r.subscription_id}: {r.error}" for r in self.received if r.error]

    def subscribe(self, application_server_key: str) -> FakeSubscription:
        assert self.port, "start the fake first: endpoints name its port"
        # Endpoints are long random capability URLs, like real push services' (150-700 characters).
        sub_id = f"{next(self._ids):04d}-{secrets.token_urlsafe(96)}"
        sub = FakeSubscription(
            id=sub_id,
            endpoint=f"{self.origin}/push/{sub_id}",
            application_server_key=application_server_key,
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=os.urandom(16),
        )
        self.subscriptions[sub_id] = sub
        return sub

    def reply_to(self, sub: FakeSubscription, reply: PushReply) -> None:
        self.replies[sub.id] = reply

    def payloads(self, sub: FakeSubscription | None = None) -> list[dict[str, Any]]:
        return [
            r.payload
            for r in self.received
            if r.payload is not None and (sub is None or r.subscription_id == sub.id)
        ]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push/{id}", self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.certs.server_context())
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._activity.clear()
                await self._activity.wait()

    # -- the push service ------------------------------------------------------------------------------

    async def _push(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["id"]
        record = PushRequest(sub_id, dict(request.headers), await request.read())
        self.received.append(record)
        self._activity.set()
        sub = self.subscriptions.get(sub_id)
        reply = self.replies.get(sub_id)
        if sub is None:
            return web.Response(status=404, text="no such subscription")
        problem = self._check(request, sub, record)
        if problem is not None:
            record.error = problem
            return web.Response(status=403 if problem.startswith("vapid") else 400, text=problem)
        if reply is not None and reply.status != 201:
            headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else None
            return web.Response(status=reply.status, text=reply.body, headers=headers)
        return web.Response(status=201, headers={"Location": f"{self.origin}/message/{len(self.received)}"})

    def _check(self, request: web.Request, sub: FakeSubscription, record: PushRequest) -> str | None:
        problem = self._check_vapid(request.headers.get("Authorization", ""), sub, record)
        if problem is not None:
            return problem
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return f"Content-Encoding must be aes128gcm, not {request.headers.get('Content-Encoding')!r}"
        if not request.headers.get("TTL", "").isdigit():
            return "a TTL header is required (RFC 8030 §5.2)"
        try:
            plain = decrypt(record.body, sub.private_key, sub.auth)
        except (DecryptError, ValueError) as exc:
            return f"cannot decrypt: {exc}"
        try:
            record.payload = json.loads(plain)
        except ValueError:
            return "the decrypted payload is not JSON"
        return None

    def _check_vapid(self, header: str, sub: FakeSubscription, record: PushRequest) -> str | None:
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "vapid":
            return f"vapid: Authorization must use the vapid scheme, not {scheme!r}"
        params = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
        token, key = params.get("t", ""), params.get("k", "")
        if key != sub.application_server_key:
            return "vapid: k is not the key this subscription was made with"
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
            header_fields = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                public,
                algorithms=["ES256"],
                audience=self.origin,
                options={"require": ["aud", "exp", "sub"], "verify_exp": False},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            return f"vapid: {type(exc).__name__}: {exc}"
        record.claims = claims
        if header_fields.get("alg") != "ES256":
            return "vapid: the JWT must be ES256"
        now = self.now()
        if not now < float(claims["exp"]) <= now + 86400:
            return "vapid: exp must be in the future and at most 24 hours away"
        if not _SUB.fullmatch(str(claims["sub"])):
            return "vapid: sub must be a mailto: or https: URI"
        origin = urllib.parse.urlsplit(sub.endpoint)
        if claims["aud"] != f"{origin.scheme}://{origin.netloc}":
            return "vapid: aud must be the endpoint's origin"
        return None
