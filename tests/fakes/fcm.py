"""FakeFcm: a loopback aiohttp server playing both Google's OAuth token endpoint and FCM HTTP v1.

- `POST /token`: the service-account JWT-bearer grant. The assertion must be RS256-signed by the test
  service account's key, with `aud` = Google's token URI (what google-auth always sends) or this one,
  `iss` = its client_email, the key's `kid` and the firebase.messaging scope. The answer is
  `{"access_token", "expires_in", "token_type": "Bearer"}`. Requests are recorded (and counted).
- `POST /v1/projects/{project}/messages:send`: checks the bearer token (issued here, not revoked), records
  the JSON, and answers per device token or globally like FCM does (200, 404 UNREGISTERED, 400
  INVALID_ARGUMENT, 429 with Retry-After, 500, a delay, or a stall).

    fake = FakeFcm()
    await fake.start()
    credentials_file = fake.write_service_account(tmp_path)
    ... FcmSettings(credentials_file=str(credentials_file), endpoint=fake.url) ...
    await fake.stop()
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# google-auth always addresses the grant to Google's token endpoint, whatever token_uri says; Google
# expects exactly that audience, so the fake accepts it (or its own URI).
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@functools.cache
def _service_account_key() -> rsa.RSAPrivateKey:
    # One throwaway key per test session: RSA generation is the slow part of a fresh fake.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _error(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


@dataclass(frozen=True)
class FcmReply:
    status: int = 200
    body: dict[str, Any] | None = None  # None: {"name": "projects/<p>/messages/<n>"} for a 200
    retry_after: int | None = None
    delay: float = 0.0  # seconds before answering
    stall: bool = False  # never answer (until the fake stops)

    @classmethod
    def ok(cls, delay: float = 0.0) -> FcmReply:
        return cls(delay=delay)

    @classmethod
    def unregistered(cls) -> FcmReply:
        body = _error(
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
            {"@type": _FCM_ERROR, "errorCode": "UNREGISTERED"},
        )
        return cls(404, body)

    @classmethod
    def invalid_token(cls) -> FcmReply:
        body = _error(
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            {"@type": _FCM_ERROR, "errorCode": "INVALID_ARGUMENT"},
        )
        return cls(400, body)

    @classmethod
    def invalid_payload(cls, field_path: str = "message.data[0].value") -> FcmReply:
        body = _error(
            400,
            "INVALID_ARGUMENT",
            f"Invalid value at '{field_path}'",
            {
                "@type": _BAD_REQUEST,
                "fieldViolations": [{"field": field_path, "description": "Invalid value"}],
            },
        )
        return cls(400, body)

    @classmethod
    def too_many_requests(cls, retry_after: int | None = 30) -> FcmReply:
        body = _error(
            429, "RESOURCE_EXHAUSTED", "Quota exceeded.", {"@type": _FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"}
        )
        return cls(429, body, retry_after=retry_after)

    @classmethod
    def internal_error(cls) -> FcmReply:
        return cls(
            500,
            _error(
                500, "INTERNAL", "Internal error encountered.", {"@type": _FCM_ERROR, "errorCode": "INTERNAL"}
            ),
        )

    @classmethod
    def sender_id_mismatch(cls) -> FcmReply:
        body = _error(
            403,
            "PERMISSION_DENIED",
            "SenderId mismatch",
            {"@type": _FCM_ERROR, "errorCode": "SENDER_ID_MISMATCH"},
        )
        return cls(403, body)

    @classmethod
    def stalled(cls) -> FcmReply:
        return cls(stall=True)


@dataclass
class FcmRequest:
    project: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body
    access_token: str | None  # from the Authorization header
    authorized: bool

    @property
    def message(self) -> dict[str, Any]:
        message = self.body.get("message") if isinstance(self.body, dict) else None
        return message if isinstance(message, dict) else {}

    @property
    def token(self) -> str | None:
        return self.message.get("token")


@dataclass
class TokenRequest:
    form: dict[str, str]
    claims: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class FakeFcm:
    def __init__(
        self,
        *,
        project_id: str = "securemsg-test",
        client_email: str = "push@securemsg-test.iam.gserviceaccount.com",
        token_lifetime: int = 3600,
    ) -> None:
        self.project_id = project_id
        self.client_email = client_email
        self.private_key_id = secrets.token_hex(20)
        self.token_lifetime = token_lifetime
        self.default_reply = FcmReply.ok()
        self.replies: dict[str, FcmReply] = {}
        # When set, the token endpoint answers this (status, JSON body) instead of a token.
        self.token_error: tuple[int, dict[str, Any]] | None = None
        self.received: list[FcmRequest] = []
        self.token_requests: list[TokenRequest] = []
        self.issued_tokens: list[str] = []
        self.revoked_tokens: set[str] = set()
        self.in_flight = 0
        self.max_concurrent = 0
        self._key = _service_account_key()
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self._activity = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def token_request_count(self) -> int:
        return len(self.token_requests)

    def reply_all(self, reply: FcmReply) -> None:
        self.default_reply = reply

    def reply_to(self, token: str, reply: FcmReply) -> None:
        self.replies[token] = reply

    def revoke_tokens(self) -> None:
        """Every access token issued so far now gets 401, as after a key rotation."""
        self.revoked_tokens.update(self.issued_tokens)

    def service_account_info(self, token_uri: str | None = None) -> dict[str, str]:
        private_pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": private_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri or self.token_uri,
            "universe_domain": "googleapis.com",
        }

    def write_service_account(self, directory: Path, token_uri: str | None = None) -> Path:
        """Write a service-account JSON whose token_uri points at this fake (call after `start`)."""
        assert self.port, "start the fake first: the file names its port"
        path = directory / "fcm-service-account.json"
        path.write_text(json.dumps(self.service_account_info(token_uri), indent=2))
        path.chmod(0o600)
        return path

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._release.set()
        await self._runner.cleanup()
        self._runner = None

    async def wait_until(self, predicate: Callable[[], bool], within: float = 2.0) -> None:
        """Wait (at most `within` seconds) until `predicate()` holds; it is checked after every request."""
        async with asyncio.timeout(within):
            while not predicate():
                self._activity.clear()
                await self._activity.wait()

    # -- handlers ------------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        record = TokenRequest(form)
        self.token_requests.append(record)
        self._activity.set()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            record.error = "unsupported_grant_type"
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            header = jwt.get_unverified_header(form.get("assertion", ""))
            record.claims = jwt.decode(
                form.get("assertion", ""),
                self._key.public_key(),
                algorithms=["RS256"],
                audience=[GOOGLE_TOKEN_AUDIENCE, self.token_uri],
                issuer=self.client_email,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            record.error = f"invalid_grant: {exc}"
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        if (
            header.get("kid") != self.private_key_id
            or SCOPE not in str(record.claims.get("scope", "")).split()
        ):
            record.error = "invalid_scope or kid"
            return web.json_response({"error": "invalid_scope"}, status=400)
        if self.token_error is not None:
            status, body = self.token_error
            record.error = f"told to fail: {status}"
            return web.json_response(body, status=status)
        token = f"ya29.fake-{len(self.issued_tokens) + 1}-{secrets.token_urlsafe(12)}"
        self.issued_tokens.append(token)
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        access_token = authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else None
        authorized = (
            access_token is not None
            and access_token in self.issued_tokens
            and access_token not in self.revoked_tokens
        )
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        record = FcmRequest(
            request.match_info["project"], dict(request.headers), body, access_token, authorized
        )
        self.received.append(record)
        self.in_flight += 1
        self.max_concurrent = max(self.max_concurrent, self.in_flight)
        self._activity.set()
        try:
            reply = self._choose(record)
            if reply.stall:
                await self._release.wait()
                return web.json_response(_error(503, "UNAVAILABLE", "The fake is stopping."), status=503)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else None
            payload = reply.body
            if payload is None:
                payload = {"name": f"projects/{record.project}/messages/{len(self.received)}"}
            return web.json_response(payload, status=reply.status, headers=headers)
        finally:
            self.in_flight -= 1
            self._activity.set()

    def _choose(self, record: FcmRequest) -> FcmReply:
        if not record.authorized:
            text = "Request had invalid authentication credentials."
            return FcmReply(401, _error(401, "UNAUTHENTICATED", text))
        if record.project != self.project_id:
            return FcmReply(403, _error(403, "PERMISSION_DENIED", "Permission denied on the project."))
        message = record.message
        if not message.get("token"):
            return FcmReply.invalid_payload("message.token")
        data = message.get("data", {})
        if not isinstance(data, dict):
            return FcmReply.invalid_payload("message.data")
        for index, value in enumerate(data.values()):
            if not isinstance(value, str):  # real FCM refuses non-string data values
                return FcmReply.invalid_payload(f"message.data[{index}].value")
        return self.replies.get(str(message["token"]), self.default_reply)
