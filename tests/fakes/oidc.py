"""FakeOidc: an OpenID Connect provider on loopback (an aiohttp server), standing in for Google.

- `GET /.well-known/openid-configuration`: the discovery document (issuer = this server's URL).
- `GET /jwks`: the public halves of its RS256 signing keys; `rotate()` adds a new key and signs with it.
- `GET /authorize`: no login form: it signs in `fake.user` at once and redirects back to `redirect_uri` with a
  code and the `state` (or with `error=access_denied` when `fake.deny` is set). It checks what a real
  provider checks: response_type=code, the client id, an `openid` scope and a PKCE S256 challenge.
- `POST /token`: the client secret (Basic or in the form), the code (once, for the same redirect_uri) and
  the PKCE verifier against the challenge, then an ID token signed with the current key, for the user and
  nonce the code was issued for. Times come from the test's clock.

What a test can make it do wrong: `claims` (merged into every ID token: a wrong `aud`, `iss`, `exp`, `nonce`,
`email_verified`, ...), `forge` (sign with a key it does not publish, under a published key id), `kid` (name
a key id nobody has), `attack_alg` ("none": an unsigned token; "HS256": signed with the client secret as an
HMAC key, the classic confusion attack), `discovery` (merged into the discovery document: another `issuer`).
It counts discovery and JWKS fetches and records every token request's outcome.

Other providers than Google's shape: `path` puts everything under a path, as Microsoft's
(`/{tenant}/v2.0`) and Okta's (`/oauth2/default`) issuers are; `auth_methods` is what the token endpoint
accepts and the discovery document says (Basic, or only `client_secret_post`); `signing` is the key type
it signs with ("RS256" or "ES256").

    fake = FakeOidc(clock)
    await fake.start()
    config = ...(oidc_issuer=fake.issuer, oidc_client_id=fake.client_id, oidc_client_secret=fake.client_secret)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from inbox.clock import Clock


@functools.cache
def _key(n: int) -> RSAKey:
    """Throwaway RSA keys, made once per test session (generating them is the slow part)."""
    return RSAKey.generate_key(2048, parameters={"kid": f"fake-key-{n}", "use": "sig", "alg": "RS256"})


@functools.cache
def _ec_key(n: int) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": f"fake-ec-key-{n}", "use": "sig", "alg": "ES256"})


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class FakeUser:
    sub: str
    email: str
    email_verified: bool = True


@dataclass
class _Code:
    user: FakeUser
    nonce: str | None
    challenge: str
    redirect_uri: str
    used: bool = False


@dataclass
class FakeOidc:
    clock: Clock
    client_id: str = "securemsg-test.apps.example"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user: FakeUser = field(default_factory=lambda: FakeUser("1000001", "nobody@example.net"))
    claims: dict[str, Any] = field(default_factory=dict)
    forge: bool = False
    kid: str | None = None
    deny: bool = False
    attack_alg: str | None = None
    discovery: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    signing: str = "RS256"
    discovery_fetches: int = 0
    jwks_fetches: int = 0
    token_outcomes: list[str] = field(default_factory=list)
    authorize_queries: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._keys: list[Any] = [self._new_key(0)]
        self._codes: dict[str, _Code] = {}
        self._runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def _new_key(self, n: int) -> Any:
        return _ec_key(n) if self.signing == "ES256" else _key(n)

    def rotate(self) -> None:
        """Publish a new key and sign with it from now on (the old one stays published)."""
        self._keys.append(self._new_key(len(self._keys)))

    def retire_old_keys(self) -> None:
        self._keys = self._keys[-1:]

    # --- server --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(f"{self.path}/.well-known/openid-configuration", self._discovery)
        app.router.add_get(f"{self.path}/jwks", self._jwks)
        app.router.add_get(f"{self.path}/authorize", self._authorize)
        app.router.add_post(f"{self.path}/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_fetches += 1
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [self.signing],
                "scopes_supported": ["openid", "email"],
                "token_endpoint_auth_methods_supported": list(self.auth_methods),
                "code_challenge_methods_supported": ["S256"],
            }
            | self.discovery
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [k.as_dict(private=False) for k in self._keys]})

    async def _authorize(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.authorize_queries.append(q)
        redirect_uri = q.get("redirect_uri", "")
        if (
            q.get("response_type") != "code"
            or q.get("client_id") != self.client_id
            or "openid" not in q.get("scope", "").split()
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
            or not redirect_uri
        ):
            return web.Response(status=400, text="invalid authorization request")
        back: dict[str, str] = {"state": q.get("state", "")}
        if self.deny:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Code(self.user, q.get("nonce"), q["code_challenge"], redirect_uri)
            back["code"] = code
        raise web.HTTPFound(redirect_uri + "?" + urlencode(back))

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            if "client_secret_basic" not in self.auth_methods:
                return False
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return unquote_plus(user) == self.client_id and unquote_plus(password) == self.client_secret
        if "client_secret_post" not in self.auth_methods:
            return False
        return form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret

    def _refuse(self, status: int, error: str) -> web.Response:
        self.token_outcomes.append(error)
        return web.json_response({"error": error}, status=status)

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if not self._client_ok(request, form):
            return self._refuse(401, "invalid_client")
        code = self._codes.get(form.get("code", ""))
        if form.get("grant_type") != "authorization_code" or code is None or code.used:
            return self._refuse(400, "invalid_grant")
        code.used = True
        if form.get("redirect_uri") != code.redirect_uri:
            return self._refuse(400, "invalid_grant")
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or digest != code.challenge:
            return self._refuse(400, "invalid_grant")
        self.token_outcomes.append("ok")
        return web.json_response(
            {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 3600}
            | {"id_token": self.id_token(code.user, code.nonce)}
        )

    # --- tokens ----------------------------------------------------------------------------------------------

    def id_token(self, user: FakeUser, nonce: str | None) -> str:
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "azp": self.client_id,
            "sub": user.sub,
            "email": user.email,
            "email_verified": user.email_verified,
            "iat": now,
            "exp": now + 3600,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(self.claims)
        current = self._keys[-1]
        kid = self.kid or current.kid
        if self.attack_alg == "none":
            header = json.dumps({"alg": "none", "kid": kid}).encode()
            return f"{_b64url(header)}.{_b64url(json.dumps(claims).encode())}."
        if self.attack_alg == "HS256":
            return jwt.encode({"alg": "HS256", "kid": kid}, claims, OctKey.import_key(self.client_secret))
        key = self._new_key(99) if self.forge else current
        return jwt.encode({"alg": self.signing, "kid": kid}, claims, key)
