"""Who is calling: a bearer token (API), or the session cookie (pages and the websocket)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.cookies import read_cookie
from gateway.keys import CTX
from inbox import apikeys
from inbox.accounts import Principal, require_manager, resolve_token
from inbox.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from inbox.models import Participant
    from inbox.sending import Caller

SESSION_COOKIE = "securemsg_session"
PORTAL_COOKIE = "securemsg_portal"
_PRINCIPAL = web.RequestKey("principal", Principal)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def principal_or_none(request: web.Request) -> Principal | None:
    if _PRINCIPAL in request:
        return request[_PRINCIPAL]
    ctx = request.app[CTX]
    principal = None
    token = bearer_token(request)
    if token is not None:
        principal = await resolve_token(ctx, token)
    else:
        cookie = read_cookie(request, SESSION_COOKIE) or read_cookie(request, PORTAL_COOKIE)
        if cookie:
            principal = await resolve_token(ctx, cookie)
            if principal is not None and request.method in _UNSAFE and request.path.startswith("/api/"):
                # Cookie-authenticated API writes (from our own pages) must carry the session's CSRF token.
                sent = request.headers.get("X-CSRF-Token", "")
                if not principal.csrf_token or not hmac.compare_digest(sent, principal.csrf_token):
                    raise Forbidden("csrf_failed", "The request is missing its CSRF token; reload the page.")
    if principal is not None:
        if principal.is_api_key:
            await apikeys.note_use(ctx, principal)
        request[_PRINCIPAL] = principal
    return principal


def has_principal(request: web.Request) -> bool:
    """Whether this request's caller has been looked up already."""
    return _PRINCIPAL in request


async def require_principal(request: web.Request) -> Principal:
    return _required(request, await principal_or_none(request))


async def require_participant(request: web.Request) -> Participant:
    return _participant(await require_principal(request))


def participant_from(request: web.Request, principal: Principal | None) -> Participant:
    """`require_participant`, with the principal this request's caller was resolved to already: the same
    errors, and it is remembered."""
    if principal is not None:
        request[_PRINCIPAL] = principal
    return _participant(_required(request, principal))


def sender_id_from(request: web.Request, caller: Caller) -> int:
    """`require_participant` for a bearer token judged in the send's own query (`inbox.sending.read_caller`):
    the same errors; the participant's id."""
    if not caller.holds:
        raise _unauthenticated(request)
    if caller.participant_id is None:
        raise _not_a_person()
    return caller.participant_id


def _required(request: web.Request, principal: Principal | None) -> Principal:
    if principal is None:
        raise _unauthenticated(request)
    return principal


def _participant(principal: Principal) -> Participant:
    if principal.participant is None:
        raise _not_a_person()
    return principal.participant


def _unauthenticated(request: web.Request) -> Unauthenticated:
    if bearer_token(request) is not None:
        return Unauthenticated("invalid_token", "The token is not valid or has expired.")
    return Unauthenticated("unauthenticated", "Sign in first: send Authorization: Bearer <token>.")


def _not_a_person() -> Forbidden:
    return Forbidden("participant_required", "This call needs a person's token, not the practice API key.")


async def require_provisioner(request: web.Request) -> Principal:
    principal = await require_principal(request)
    require_manager(principal)
    return principal


async def require_api_key(request: web.Request, scope: str = apikeys.INTEGRATION) -> Principal:
    """A practice API key that has `scope` (R29): else 403 `key_scope`."""
    principal = await require_principal(request)
    if not principal.is_api_key:
        raise Forbidden("api_key_required", "This call needs the practice API key.")
    apikeys.require_scope(principal, scope)
    return principal
