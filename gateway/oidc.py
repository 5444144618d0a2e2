"""The OpenID Connect relying party behind the portal's "Sign in with Google" (any provider that follows
the standard works: Microsoft, Okta, ...).

- The provider's discovery document (`{issuer}/.well-known/openid-configuration`) is fetched when first
  needed and kept for an hour; its `issuer` must be the configured one exactly (OpenID Connect Discovery
  §4.3), so a document served from elsewhere cannot point us at another provider's endpoints.
- Its signing keys (JWKS) are kept for an hour, or until a token names a key id we do not hold: then they
  are fetched again, at most once a minute, so a provider that rotated its keys keeps working and a stream
  of tokens with made-up key ids cannot make us hammer the provider.
- The code is exchanged over aiohttp (never a blocking client in the event loop), with the PKCE verifier and
  the client secret.
- The ID token is checked with joserfc: the signature against the provider's keys, with an asymmetric
  algorithm only (never `none`, never HMAC with the client secret), then `iss`, `aud` (and `azp` when there
  are several audiences), `exp`, `iat` and `nonce`. Every way a token fails is a `TokenRefused` with the
  name of the check, for the audit log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
from aiohttp import web
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from gateway.config import Config
from gateway.keys import CONFIG, CTX
from inbox.clock import Clock

log = logging.getLogger(__name__)

DISCOVERY_TTL_S = 3600
KEYS_TTL_S = 3600  # keys the provider withdrew stop working within the hour
JWKS_REFETCH_MIN_S = 60  # an unknown key id fetches the keys again at most this often
LEEWAY_S = 60  # clock skew allowed on exp and iat
MAX_TOKEN_AGE_S = 600  # an ID token fresh from the token endpoint was issued moments ago
HTTP_TIMEOUT_S = 10
MAX_DOCUMENT_BYTES = 256 * 1024
# Signatures we accept: public-key ones only. HS256 would take the client secret as the key, and "none"
# would take nothing.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class ProviderUnavailable(Exception):
    """The provider did not answer, or answered with something that is not what the standard says."""


class CodeRefused(Exception):
    """The token endpoint refused the code (used, expired, not ours, wrong verifier)."""


class TokenRefused(Exception):
    """An ID token that does not hold; `check` names what failed (signature, exp, aud, iss, nonce, ...)."""

    def __init__(self, check: str) -> None:
        super().__init__(check)
        self.check = check


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256."""
    return b64url(hashlib.sha256(verifier.encode()).digest())


def unverified_claims(id_token: str) -> dict[str, Any]:
    """The claims a token says it carries, without trusting them: only to find whose chain of the audit log
    a refused token belongs in. Empty when the token does not even parse."""
    try:
        claims = json.loads(jws.extract_compact(id_token.encode()).payload)
    except (JoseError, ValueError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}


class OidcClient:
    def __init__(self, config: Config, session: aiohttp.ClientSession, clock: Clock) -> None:
        assert config.oidc_client_id and config.oidc_client_secret
        self.issuer = config.oidc_issuer
        self.client_id = config.oidc_client_id
        self.client_secret = config.oidc_client_secret
        self.session = session
        self.clock = clock
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._refetched_at: float | None = None  # when an unknown key id last made us fetch the keys
        self._metadata_lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()

    def _now(self) -> float:
        return self.clock.now().timestamp()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self.session.get(url, headers={"Accept": "application/json"}) as resp:
                body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
                if resp.status != 200 or len(body) > MAX_DOCUMENT_BYTES:
                    raise ProviderUnavailable(f"{url} answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(f"{url}: {type(exc).__name__}") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise ProviderUnavailable(f"{url} did not answer JSON") from None
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{url} did not answer a JSON object")
        return data

    # --- discovery and keys ------------------------------------------------------------------------------

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is not None and self._now() - self._metadata_at < DISCOVERY_TTL_S:
            return self._metadata
        async with self._metadata_lock:
            if self._metadata is not None and self._now() - self._metadata_at < DISCOVERY_TTL_S:
                return self._metadata
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                doc = await self._get_json(url)
            except ProviderUnavailable:
                if self._metadata is not None:  # keep working on the copy we have while it is down
                    log.warning("OIDC discovery refetch failed; keeping the cached document")
                    return self._metadata
                raise
            if doc.get("issuer") != self.issuer:
                raise ProviderUnavailable(f"the discovery document's issuer is not {self.issuer}")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not _safe_url(doc.get(name), self.issuer):
                    raise ProviderUnavailable(f"the discovery document has no usable {name}")
            self._metadata, self._metadata_at = doc, self._now()
            return doc

    async def _fetch_keys(self) -> KeySet:
        doc = await self.metadata()
        data = await self._get_json(doc["jwks_uri"])
        raw_keys = data.get("keys")
        if not isinstance(raw_keys, list):
            raise ProviderUnavailable("the JWKS has no keys")
        usable = [
            k
            for k in raw_keys
            if isinstance(k, dict) and k.get("kty") in ("RSA", "EC") and k.get("use", "sig") == "sig"
        ]
        try:
            keys = KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError):
            raise ProviderUnavailable("the JWKS holds a key that cannot be read") from None
        self._keys, self._keys_at = keys, self._now()
        return keys

    async def _key_for(self, kid: str | None, alg: str) -> Any:
        """The provider's key for this token: from the cache, or after one (rate limited) refetch."""
        async with self._keys_lock:
            fresh = self._keys is not None and self._now() - self._keys_at < KEYS_TTL_S
            keys = self._keys if fresh and self._keys is not None else await self._fetch_keys()
            key = _pick(keys, kid, alg)
            last = self._refetched_at
            if key is None and (last is None or self._now() - last >= JWKS_REFETCH_MIN_S):
                self._refetched_at = self._now()
                key = _pick(await self._fetch_keys(), kid, alg)
        if key is None:
            raise TokenRefused("unknown_key")
        return key

    # --- the flow ------------------------------------------------------------------------------------------

    async def authorization_url(self, *, state: str, nonce: str, verifier: str, redirect_uri: str) -> str:
        doc = await self.metadata()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email",
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        endpoint = doc["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)

    async def exchange(self, *, code: str, verifier: str, redirect_uri: str) -> str:
        """The ID token for an authorization code (RFC 6749 §4.1.3 with RFC 7636's verifier)."""
        doc = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        headers = {"Accept": "application/json"}
        if "client_secret_basic" in methods:
            pair = f"{_form_quote(self.client_id)}:{_form_quote(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": self.client_id, "client_secret": self.client_secret}
        try:
            async with self.session.post(doc["token_endpoint"], data=form, headers=headers) as resp:
                body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(f"token endpoint: {type(exc).__name__}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if status in (400, 401) and isinstance(answer, dict):
            raise CodeRefused(str(answer.get("error", "invalid_grant"))[:40])
        if status != 200 or not isinstance(answer, dict):
            raise ProviderUnavailable(f"token endpoint answered {status}")
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise TokenRefused("missing")
        return id_token

    async def verify(self, id_token: str, nonce: str) -> Identity:
        """The identity in a verified ID token, or TokenRefused."""
        try:
            header = jws.extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError, TypeError):
            raise TokenRefused("malformed") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRefused("algorithm")
        kid = header.get("kid")
        key = await self._key_for(kid if isinstance(kid, str) else None, alg)
        try:
            token = jwt.decode(id_token, key, algorithms=[alg])
        except BadSignatureError:
            raise TokenRefused("signature") from None
        except (JoseError, ValueError, TypeError):
            raise TokenRefused("malformed") from None
        claims = token.claims
        now = int(self._now())
        registry = jwt.JWTClaimsRegistry(
            now=now,
            leeway=LEEWAY_S,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise TokenRefused("exp") from None
        except MissingClaimError as exc:
            raise TokenRefused(f"missing_{exc.claim.split(',')[0]}") from None
        except InvalidClaimError as exc:
            raise TokenRefused(exc.claim) from None
        except (JoseError, ValueError, TypeError):
            raise TokenRefused("malformed") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise TokenRefused("azp")
        if claims["iat"] < now - MAX_TOKEN_AGE_S - LEEWAY_S:
            raise TokenRefused("iat")
        sent = claims["nonce"]
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise TokenRefused("nonce")
        email = claims.get("email")
        return Identity(
            issuer=self.issuer,
            subject=str(claims["sub"])[:255],
            email=email if isinstance(email, str) and email else None,
            # Only a true boolean counts (some providers send the string "true": that is not verified here).
            email_verified=claims.get("email_verified") is True,
        )


def _pick(keys: KeySet, kid: str | None, alg: str) -> Any:
    try:
        return keys.get_by_kid(kid, {"alg": alg}) if kid else _only(keys, alg)
    except (JoseError, ValueError, KeyError):
        return None


def _only(keys: KeySet, alg: str) -> Any:
    """A token without a key id is accepted only when the provider publishes exactly one key."""
    return keys.keys[0] if len(keys.keys) == 1 else None


def _form_quote(value: str) -> str:
    # RFC 6749 §2.3.1: the client id and secret are form-urlencoded before going into Basic auth.
    return quote_plus(value)


def _safe_url(value: Any, issuer: str) -> bool:
    """An endpoint in the discovery document: https, or http only when the issuer itself is (loopback)."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return bool(parts.hostname) and (
        parts.scheme == "https" or (parts.scheme == "http" and issuer.startswith("http://"))
    )


# --- the app part --------------------------------------------------------------------------------------

OIDC = web.AppKey("oidc", OidcClient)


async def oidc_part(app: web.Application) -> AsyncIterator[None]:
    """Sign in with Google: on when SECUREMSG_OIDC_CLIENT_ID is set, and said once at start either way."""
    config = app[CONFIG]
    if not config.oidc_enabled:
        log.info("Sign in with %s is off: SECUREMSG_OIDC_CLIENT_ID is not set", config.oidc_name)
        yield
        return
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
    app[OIDC] = OidcClient(config, session, app[CTX].clock)
    log.info("Sign in with %s is on (issuer %s)", config.oidc_name, config.oidc_issuer)
    try:
        yield
    finally:
        await session.close()
