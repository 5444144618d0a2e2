"""Web Push to browsers (RFC 8030), encrypted per RFC 8291 (aes128gcm) and signed per RFC 8292 (VAPID).

The cryptography is done by two small, long-maintained libraries and nothing else: `http_ece` (the reference
implementation of RFC 8188's aes128gcm, by the RFC's author) encrypts each payload to the subscription's
keys, `py_vapid` (Mozilla's) signs the VAPID JWT. Both are CPU-only and take well under a millisecond a
message, so they run inline; the HTTP POST goes over aiohttp, bounded by a timeout, never followed through a
redirect. pywebpush is not used: it would bring `requests` and its own sending, where only the encryption
and the signature are wanted.

The subscription's endpoint is the push service's URL, given by the browser, so it is outbound to an
address a user chose: the session the gateway hands in resolves only to public addresses (the same guard as
webhooks, gateway.public_resolver), and `refuse_url` turns away address literals before connecting. A
refused endpoint will never work, so its device is reported dead like a 404 / 410 one.

A browser must show a notification for every push it gets (`userVisibleOnly`), so silent badge-only
updates are never sent here (the planner leaves Web Push devices out of them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from push.base import Outcome, PushMessage, PushResult, alert_title, check_message, collect, parse_retry_after

log = logging.getLogger("push.webpush")

# RFC 8291 §4: a push message is one record, and push services need accept no more than 4096 octets of
# it; ours are a few hundred.
MAX_BODY = 4096
RECORD_SIZE = 4096
# RFC 8292 §2: `exp` no more than 24 hours ahead. Signed for 12, reused for at most one.
JWT_LIFETIME_S = 12 * 3600
JWT_REUSE_S = 3600
DEFAULT_TTL_S = 86400  # how long the push service keeps a push for a browser that is offline
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")  # RFC 8030 §5.4: the base64url alphabet, at most 32 characters
_SUBJECT = re.compile(r"(mailto:[^@\s]+@[^@\s]+|https://[^\s/?#]+(/[^\s?#]*)?)")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def check_subject(subject: str) -> str:
    """RFC 8292 §2.1: the operator's contact, a mailto: or https: URI (push services write to it)."""
    subject = subject.strip()
    if not _SUBJECT.fullmatch(subject):
        raise ValueError(f"the VAPID subject must be mailto:address or an https:// URL, not {subject!r}")
    return subject


def new_vapid_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_vapid_raw() -> str:
    """A new VAPID private key as SECUREMSG_VAPID_PRIVATE_KEY takes it: base64url of the 32-byte value."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def pem_from_raw(raw: str) -> str:
    """A key given as the base64url of its 32-byte private value (what Web Push tools print) as PEM."""
    try:
        value = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ValueError("the VAPID private key must be 32 bytes, base64url-encoded")
    try:
        key = ec.derive_private_key(int.from_bytes(value, "big"), ec.SECP256R1())
    except ValueError as exc:
        raise ValueError("the VAPID private key is not a P-256 private value") from exc
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def read_or_create_vapid_key(path: Path) -> str:
    """The VAPID private key (PEM) in `path`, made on first use, readable by its owner only (0600).

    Several processes starting together (`serve --processes N`) must end with one key: it is written whole
    to a file of this process's own and linked into place, which fails for all but the first; the others
    read the winner's. Browsers subscribe with its public key, so a lost or replaced key ends every
    subscription: backups keep it (every *.key in the var directory is kept).
    """
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(new_vapid_pem())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text()


def load_vapid_key(pem: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("the VAPID key is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the VAPID key must be a P-256 key")
    return key


def application_server_key(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key browsers subscribe with (`applicationServerKey`): the uncompressed point, base64url."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


@dataclass(frozen=True)
class WebPushSettings:
    vapid_pem: str = field(repr=False)
    subject: str  # mailto:ops@example.org or https://example.org
    timeout_s: float = 10
    max_in_flight: int = 100
    ttl_s: int = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        load_vapid_key(self.vapid_pem)
        check_subject(self.subject)
        if not self.timeout_s > 0:
            raise ValueError("Web Push timeout must be positive")
        if self.max_in_flight < 1:
            raise ValueError("Web Push max_in_flight must be at least 1")

    @property
    def public_key(self) -> str:
        return application_server_key(load_vapid_key(self.vapid_pem))


def payload(msg: PushMessage) -> dict[str, Any]:
    """What the service worker gets (docs/api.md §5): ids, the links, a generic title, the badge, a tag."""
    body: dict[str, Any] = {**msg.data, "type": msg.push_type, "title": alert_title(msg)}
    if msg.badge is not None:
        body["badge"] = msg.badge
    if msg.collapse_key:
        body["tag"] = msg.collapse_key
    return body


def topic(collapse_key: str) -> str:
    """RFC 8030's Topic header: a newer push with the same topic replaces one still waiting for delivery."""
    if _TOPIC.fullmatch(collapse_key):
        return collapse_key
    return b64url(hashlib.sha256(collapse_key.encode()).digest())[:32]


def encrypt(
    body: bytes,
    keys_p256dh: bytes,
    keys_auth: bytes,
    *,
    ephemeral: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """RFC 8291: a new ephemeral key pair and salt per message (the arguments are for the RFC's example);
    the ephemeral public key travels as the record's key id."""
    sealed: bytes = http_ece.encrypt(
        body,
        salt=salt if salt is not None else os.urandom(16),
        private_key=ephemeral if ephemeral is not None else ec.generate_private_key(ec.SECP256R1()),
        dh=keys_p256dh,
        auth_secret=keys_auth,
        version="aes128gcm",
        rs=RECORD_SIZE,
    )
    return sealed


def audience(endpoint: str) -> str:
    parts = urllib.parse.urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


class _Retry(Exception):
    pass


class _Dead(Exception):
    pass


class WebPushProvider:
    """Sends batches to browsers' push services; construct inside the running loop.

    `session`: the aiohttp session to post with (the gateway's resolves only to public addresses); None
    makes a plain one. `refuse_url(endpoint)`: a reason to refuse an endpoint without connecting (an address
    literal that is not public), else None. `refused_error(exc)`: whether a connection error was the
    session's resolver refusing every address.
    """

    name = "webpush"

    def __init__(
        self,
        settings: WebPushSettings,
        session: aiohttp.ClientSession | None = None,
        *,
        refuse_url: Callable[[str], str | None] | None = None,
        refused_error: Callable[[BaseException], bool] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        asyncio.get_running_loop()
        self.settings = settings
        self._vapid = Vapid02(load_vapid_key(settings.vapid_pem), conf={"no-strict": True})
        self.public_key = settings.public_key
        self._own_session = session is None
        self._session = session if session is not None else aiohttp.ClientSession()
        self._refuse_url = refuse_url
        self._refused_error = refused_error
        self._now = now
        self._in_flight = asyncio.Semaphore(settings.max_in_flight)
        self._jwts: dict[str, tuple[float, str]] = {}  # audience -> (signed at, Authorization header)
        self._closed = False

    async def send(self, batch: Sequence[PushMessage]) -> PushResult:
        outcomes = await asyncio.gather(*(self._send_one(msg) for msg in batch))
        return collect(batch, outcomes, log, self.name)

    def authorization(self, endpoint: str) -> str:
        """`vapid t=<JWT>, k=<public key>` for the endpoint's push service (RFC 8292 §3)."""
        aud = audience(endpoint)
        now = self._now()
        cached = self._jwts.get(aud)
        if cached is not None and 0 <= now - cached[0] < JWT_REUSE_S:
            return cached[1]
        claims = {"aud": aud, "exp": int(now) + JWT_LIFETIME_S, "sub": self.settings.subject}
        header = str(self._vapid.sign(claims)["Authorization"])
        self._jwts[aud] = (now, header)
        return header

    def _request(self, msg: PushMessage) -> tuple[bytes, dict[str, str]] | Outcome:
        problem = check_message(msg)
        if problem is not None:
            return Outcome("failed", problem)
        if msg.push_type == "badge":
            return Outcome("failed", "a browser shows every push: badge-only updates are not sent")
        if msg.keys is None:
            return Outcome("failed", "no subscription keys")
        parts = urllib.parse.urlsplit(msg.token)
        if parts.scheme != "https" or not parts.hostname:
            return Outcome("dead", "the endpoint is not an https URL")
        if self._refuse_url is not None and (why := self._refuse_url(msg.token)) is not None:
            return Outcome("dead", why)
        plain = json.dumps(payload(msg), separators=(",", ":")).encode()
        body = encrypt(plain, msg.keys.p256dh, msg.keys.auth)
        if len(body) > MAX_BODY:
            return Outcome("failed", f"payload of {len(body)} bytes is over {MAX_BODY}")
        headers = {
            "Authorization": self.authorization(msg.token),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.settings.ttl_s),
            "Urgency": "high",
        }
        if msg.collapse_key:
            headers["Topic"] = topic(msg.collapse_key)
        return body, headers

    async def _send_one(self, msg: PushMessage) -> Outcome:
        try:
            request = self._request(msg)
        except Exception as exc:  # a bad key from a subscription must not sink the rest of the batch
            return Outcome("failed", f"could not encrypt to this subscription: {type(exc).__name__}")
        if isinstance(request, Outcome):
            return request
        body, headers = request
        async with self._in_flight:
            if self._closed:
                return Outcome("retry", "provider closed")
            try:
                status, raw, retry_after = await self._post(msg.token, body, headers)
            except _Retry as exc:
                return Outcome("retry", str(exc))
            except _Dead as exc:
                return Outcome("dead", str(exc))
        return _sort(status, raw, parse_retry_after(retry_after))

    async def _post(
        self, endpoint: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, str | None]:
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                async with self._session.post(
                    endpoint, data=body, headers=headers, allow_redirects=False
                ) as response:
                    raw = await response.content.read(2048)
                    return response.status, raw, response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise _Retry(f"no answer within {self.settings.timeout_s:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            if self._refused_error is not None and self._refused_error(exc):
                raise _Dead("the endpoint is not a public address") from exc
            raise _Retry(f"connection: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._own_session:
            await self._session.close()


def _sort(status: int, raw: bytes, retry_after: float | None) -> Outcome:
    """RFC 8030 §5: 201 Created; a subscription gone is 404 or 410; 413 payload too large; 429 slow down."""
    if 200 <= status < 300:
        return Outcome("delivered")
    text = raw.decode("utf-8", "replace")
    reason = f"{status} {' '.join(text.split())[:120]}".strip()
    if status in (404, 410):
        return Outcome("dead", reason)
    if status == 429 or 500 <= status <= 599:
        return Outcome("retry", reason, retry_after)
    return Outcome("failed", reason)
