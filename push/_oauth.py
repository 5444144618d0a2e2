"""OAuth access tokens for FCM from a service-account file, refreshed off the event loop.

google-auth's own transports need `requests` or `urllib3`, which this project does not install (its bundled
`_http_client` is internal and plain-HTTP only), so `UrllibRequest` is a small `google.auth.transport.Request`
over `urllib.request`. It runs in a worker thread (`asyncio.to_thread`), never on the loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import google.auth.transport
from google.auth import exceptions as google_exceptions
from google.oauth2 import service_account

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# Refresh this long before the token's stated expiry, so a token never expires mid-request.
REFRESH_MARGIN_S = 60.0
# When the token endpoint gives no lifetime, do not trust the token for long.
UNKNOWN_LIFETIME_S = 300.0


class _Response(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status = status
        self._headers = {k.lower(): v for k, v in headers.items()}
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class UrllibRequest(google.auth.transport.Request):
    """A blocking google-auth transport over urllib; HTTPS trust follows the system store / SSL_CERT_FILE.

    Proxies from the environment are ignored, like the aiohttp session that sends the pushes.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise google_exceptions.TransportError(f"refusing a non-HTTP token URL: {url!r}")
        request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)  # noqa: S310 - scheme checked above
        try:
            with self._opener.open(request, timeout=timeout or self.timeout_s) as response:
                return _Response(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return _Response(exc.code, dict(exc.headers or {}), exc.read())
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise google_exceptions.TransportError(str(exc)) from exc


class AccessTokens:
    """Caches the service account's access token until shortly before it expires.

    At most one refresh runs at a time: callers that arrive during a refresh wait for it and share its
    token. `clock` is injectable so expiry is tested by moving time, not by sleeping.
    """

    def __init__(
        self,
        credentials: service_account.Credentials,
        transport: google.auth.transport.Request,
        clock: Callable[[], float],
    ) -> None:
        self._credentials = credentials
        self._transport = transport
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    async def get(self) -> str:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            return await self._refresh()

    async def invalidate(self, rejected: str) -> str:
        """The server refused `rejected`: get a new token, unless someone already replaced it."""
        async with self._lock:
            token = self._token
            if (
                token is not None
                and not hmac.compare_digest(token, rejected)
                and self._clock() < self._refresh_at
            ):
                return token
            return await self._refresh()

    async def _refresh(self) -> str:
        self._token = None
        token, lifetime = await asyncio.to_thread(self._refresh_blocking)
        self._token = token
        self._refresh_at = self._clock() + max(0.0, lifetime - REFRESH_MARGIN_S)
        return token

    def _refresh_blocking(self) -> tuple[str, float]:
        self._credentials.refresh(self._transport)
        token = self._credentials.token
        if not token:
            raise google_exceptions.RefreshError("the token endpoint returned no access token")
        expiry = self._credentials.expiry
        if expiry is None:
            return token, UNKNOWN_LIFETIME_S
        if expiry.tzinfo is None:  # google-auth keeps naive UTC datetimes
            expiry = expiry.replace(tzinfo=dt.UTC)
        return token, (expiry - dt.datetime.now(dt.UTC)).total_seconds()
