"""Random link/session tokens, stored only as a keyed hash (see the package docstring)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote

MIN_TOKEN_BYTES = 16
MIN_SECRET_BYTES = 16


def new_token(nbytes: int = 32) -> str:
    """A fresh URL-safe random token (``nbytes`` of randomness, base64url, no padding)."""
    if nbytes < MIN_TOKEN_BYTES:
        raise ValueError(f"a token needs at least {MIN_TOKEN_BYTES} random bytes, got {nbytes}")
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str, secret: bytes) -> str:
    """What gets stored for ``token``: hex HMAC-SHA256 keyed with the server secret.

    Keyed rather than a bare SHA-256 so that someone holding only a copy of the database cannot check
    guesses offline. Look tokens up by this value; it is deterministic for a given secret.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
    return hmac.new(secret, token.encode("utf-8"), hashlib.sha256).hexdigest()


def link_for(base_url: str, path: str, token: str) -> str:
    """Absolute link: ``link_for("http://127.0.0.1:8080", "/portal/m/", tok)`` -> ``.../portal/m/<tok>``.

    Exactly one slash joins ``base_url`` and ``path``; the token is appended to ``path`` as its last
    segment (percent-encoded, though ``new_token`` output never needs it).
    """
    if not token:
        raise ValueError("empty token")
    base = base_url.rstrip("/")
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    return f"{base}{path}{quote(token, safe='')}"
