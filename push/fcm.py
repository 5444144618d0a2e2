"""Firebase Cloud Messaging over the HTTP v1 API, with aiohttp and a service-account OAuth token.

Not pyfcm: it sleeps (blocking) between unbounded retries and its async helper fails inside a running loop.
Here every request is bounded by a timeout and retries are the dispatcher's business, with one exception:
a 401 means our cached access token went stale, so it is replaced once and that request is sent again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from google.auth import exceptions as google_exceptions
from google.oauth2 import service_account

from push._oauth import FCM_SCOPE, AccessTokens, UrllibRequest
from push.base import Outcome, PushMessage, PushResult, alert_title, check_message, collect, parse_retry_after

log = logging.getLogger("push.fcm")

# FCM refuses these data keys (reserved by the platform).
_RESERVED_KEYS = frozenset({"from", "notification", "message_type", "collapse_key"})
_RESERVED_PREFIXES = ("google", "gcm")


@dataclass(frozen=True)
class FcmSettings:
    credentials_file: str  # the service-account JSON; its token_uri is honoured
    endpoint: str = "https://fcm.googleapis.com"
    timeout_s: float = 10
    max_in_flight: int = 100

    def __post_init__(self) -> None:
        if not Path(self.credentials_file).is_file():
            raise ValueError(f"FCM credentials file not found: {self.credentials_file}")
        parts = urllib.parse.urlsplit(self.endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"FCM endpoint must look like https://host[:port], got {self.endpoint!r}")
        if not self.timeout_s > 0:
            raise ValueError("FCM timeout must be positive")
        if self.max_in_flight < 1:
            raise ValueError("FCM max_in_flight must be at least 1")


def build_body(msg: PushMessage) -> dict[str, Any]:
    """The FCM v1 request body (docs/api.md §5): ids/link/type/badge under `data`, all values strings."""
    data = {**msg.data, "type": msg.push_type}
    if msg.badge is not None:
        data["badge"] = str(msg.badge)
    silent = msg.push_type == "badge"
    # A data-only badge update is not user-visible, so it goes at normal priority: FCM demotes apps that
    # send high-priority messages which show nothing.
    android: dict[str, Any] = {"priority": "normal" if silent else "high"}
    if msg.collapse_key:
        android["collapse_key"] = msg.collapse_key
    message: dict[str, Any] = {"token": msg.token, "data": data}
    if not silent:
        message["notification"] = {"title": alert_title(msg)}
        if msg.collapse_key:
            # A newer alert for the same conversation replaces the older one in the tray.
            android["notification"] = {"tag": msg.collapse_key}
    message["android"] = android
    return {"message": message}


def _check_data(data: dict[str, str]) -> str | None:
    for key in data:
        if key in _RESERVED_KEYS or key.lower().startswith(_RESERVED_PREFIXES):
            return f"data may not use the reserved key {key!r}"
    return None


class _Retry(Exception):
    """A temporary failure: the dispatcher retries with backoff."""


class FcmProvider:
    """Sends batches to FCM; construct inside the running loop (it may create an aiohttp session)."""

    name = "fcm"

    def __init__(
        self,
        settings: FcmSettings,
        session: aiohttp.ClientSession | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        asyncio.get_running_loop()  # fail loudly when built outside a running loop (at import time)
        self.settings = settings
        try:
            credentials = service_account.Credentials.from_service_account_file(
                settings.credentials_file, scopes=[FCM_SCOPE]
            )
        except (OSError, ValueError, KeyError, google_exceptions.GoogleAuthError) as exc:
            raise ValueError(f"FCM credentials file is not a service-account JSON: {exc}") from exc
        project_id = credentials.project_id
        if not project_id:
            raise ValueError("FCM credentials file has no project_id")
        self.project_id: str = project_id
        base = settings.endpoint.rstrip("/")
        self._url = f"{base}/v1/projects/{urllib.parse.quote(project_id, safe='')}/messages:send"
        self._tokens = AccessTokens(credentials, UrllibRequest(settings.timeout_s), clock)
        self._own_session = session is None
        self._session = session if session is not None else aiohttp.ClientSession()
        self._in_flight = asyncio.Semaphore(settings.max_in_flight)
        self._closed = False

    async def send(self, batch: Sequence[PushMessage]) -> PushResult:
        outcomes = await asyncio.gather(*(self._send_one(msg) for msg in batch))
        return collect(batch, outcomes, log, self.name)

    async def _send_one(self, msg: PushMessage) -> Outcome:
        problem = check_message(msg) or _check_data(msg.data)
        if problem is not None:
            return Outcome("failed", problem)
        if not msg.token:
            return Outcome("dead", "empty device token")
        body = build_body(msg)
        async with self._in_flight:
            if self._closed:
                return Outcome("retry", "provider closed")
            try:
                token = await self._tokens.get()
                status, raw, retry_after = await self._post(body, token)
                if status == 401:
                    token = await self._tokens.invalidate(token)
                    status, raw, retry_after = await self._post(body, token)
                    if status == 401:
                        return Outcome("failed", "401 UNAUTHENTICATED even with a fresh access token")
            except _Retry as exc:
                return Outcome("retry", str(exc))
            except google_exceptions.RefreshError as exc:
                reason = f"could not get an access token: {exc}"
                return Outcome("retry", reason) if exc.retryable else Outcome("failed", reason)
            except google_exceptions.TransportError as exc:
                return Outcome("retry", f"token endpoint unreachable: {exc}")
            except Exception as exc:  # a bug here must not sink the rest of the batch
                log.exception("fcm: unexpected error")
                return Outcome("failed", f"unexpected {type(exc).__name__}")
        return _sort(status, raw, parse_retry_after(retry_after))

    async def _post(self, body: dict[str, Any], token: str) -> tuple[int, bytes, str | None]:
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                async with self._session.post(
                    self._url, json=body, headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    return response.status, await response.read(), response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise _Retry(f"no answer within {self.settings.timeout_s:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _Retry(f"connection: {type(exc).__name__} {exc}".strip()) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._own_session:
            await self._session.close()


def _error_of(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _about_token(error: dict[str, Any]) -> bool:
    """Whether an INVALID_ARGUMENT complains about the registration token (not about our payload)."""
    for detail in _details(error):
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return "registration token" in str(error.get("message", "")).lower()


def _sort(status: int, raw: bytes, retry_after: float | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome("delivered")
    error = _error_of(raw)
    fcm_status = str(error.get("status", ""))
    codes = {str(d["errorCode"]) for d in _details(error) if "errorCode" in d}
    reason = f"{status} {'/'.join(sorted(codes)) or fcm_status}: {error.get('message', '')}".strip(" :")
    if "UNREGISTERED" in codes or (status == 404 and fcm_status == "NOT_FOUND"):
        return Outcome("dead", reason)
    if status == 400 and "INVALID_ARGUMENT" in (codes | {fcm_status}) and _about_token(error):
        return Outcome("dead", reason)
    if status == 429 or 500 <= status <= 599:
        return Outcome("retry", reason, retry_after)
    return Outcome("failed", reason)
