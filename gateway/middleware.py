"""The errors middleware (domain errors and HTTP errors into docs/api.md's JSON shape; 503 only for an
unavailable database, else 500), the observe middleware (a request id for the log lines, the request's
count and latency for /metrics, and in JSON logs one access line) and the security headers on every
answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.keys import CONFIG
from gateway.logs import REQUEST_ID, REQUEST_ID_HEADER, request_id_from
from gateway.logsafe import traceback_without_values
from gateway.metrics import METRICS, UNMATCHED
from inbox.db import unavailable
from inbox.errors import DomainError, Invalid, NotFound, SlowDown

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


def _error(status: int, code: str, message: str, **extra: object) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message}
    body.update(extra)
    return web.json_response({"error": body}, status=status)


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def refuse_nul(request: web.Request) -> None:
    """U+0000 in the path or the query string never names anything, and PostgreSQL cannot take it in text."""
    if "\x00" in request.path:
        raise NotFound()
    for key, value in request.query.items():
        if "\x00" in key or "\x00" in value:
            raise Invalid("invalid_query", "The query string must not contain the NUL character.", field=key)


def route_of(request: web.Request) -> str:
    """The route's pattern (`/portal/m/{token}`) for a log line, never the path itself: a path can carry a
    link token, and tokens are never logged."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


access_log = logging.getLogger("securemsg.access")
CLIENT_GONE = 499  # as nginx logs it: the client closed the connection before the answer
REQUEST_ID_KEY = web.RequestKey("request_id", str)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: sets the request id for everything logged while the request is served (a context
    variable: each request is its own task), and counts the answer by route pattern and status. An
    exception that escapes `errors` (an HTTP error for a page: aiohttp answers it) counts with its status,
    a handler cancelled because its client went away as 499, and anything else (aiohttp's 500) as 500."""
    started = time.perf_counter()
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = request_id
    REQUEST_ID.set(request_id)
    status = 500
    websocket = False
    try:
        resp = await handler(request)
        status = resp.status
        websocket = isinstance(resp, web.WebSocketResponse)
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_GONE  # the client went away first (or the server is stopping): not a fault of ours
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = route_of(request)
        request.app[METRICS].request(request.method, route, status, None if websocket else elapsed)
        if request.app[CONFIG].log_format == "json":
            access_log.info(
                "%s %s %d",
                request.method,
                route,
                status,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        refuse_nul(request)
        return await handler(request)
    except DomainError as exc:
        resp = web.json_response(exc.to_json(), status=exc.status)
        if isinstance(exc, SlowDown):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        message = exc.reason if exc.status != 404 else "No such endpoint."
        resp = _error(exc.status, _HTTP_CODES.get(exc.status, "error"), message)
        if exc.status == 405 and "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception as exc:
        if unavailable(exc):  # a lost connection, a timeout, a locked database: try again shortly
            log.warning(
                "storage unavailable while serving %s %s: %s",
                request.method,
                route_of(request),
                type(exc).__name__,
            )
            resp = _error(503, "unavailable", "The service is briefly unavailable; try again shortly.")
            resp.headers["Retry-After"] = "2"
            return resp
        # A fault of ours (or a database error this request met): the traceback, for whoever fixes it, but
        # not the exception's message, which may quote the data it failed on.
        log.error(
            "unhandled error on %s %s\n%s",
            request.method,
            route_of(request),
            traceback_without_values(exc),
        )
        return _error(500, "internal_error", "Something went wrong on our side.")


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HSTS = "max-age=31536000; includeSubDomains"


async def security_headers(request: web.Request, resp: web.StreamResponse) -> None:
    """`on_response_prepare`: every answer gets these, including the ones aiohttp makes itself (a 404 for an
    unknown path, a 405, a 413 for a body over the limit) and the errors middleware never sees. A handler
    that sets its own (the dev mail frame's CSP) keeps it. No answer may be cached: pages and API answers
    hold health information, and a shared computer's browser cache must not keep them."""
    h = resp.headers
    request_id = request.get(REQUEST_ID_KEY)
    if request_id:  # not on answers aiohttp makes before any middleware runs (an unparseable request)
        h.setdefault(REQUEST_ID_HEADER, request_id)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("Cache-Control", "no-store")
    h.setdefault("Content-Security-Policy", CSP)
    if request.app[CONFIG].cookie_secure:  # served over https: browsers must never come back over http
        h.setdefault("Strict-Transport-Security", HSTS)
