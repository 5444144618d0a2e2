"""API keys for the practice's other systems (docs/api.md §3, R29): the owner creates, lists, revokes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auditing import audit_request
from gateway.auth import require_participant
from gateway.keys import CTX
from gateway.validation import path_int, read_json, take
from inbox import apikeys, db
from inbox.errors import Forbidden
from inbox.kinds import TEAM

if TYPE_CHECKING:
    from inbox.models import Participant

routes = web.RouteTableDef()


async def _owner(request: web.Request) -> Participant:
    """The account owner, signed in: not a manager, and not a key (a key cannot make or revoke keys)."""
    me = await require_participant(request)
    if me.kind != TEAM or "account_owner" not in me.role_set:
        raise Forbidden("owner_only", "Only the account owner can manage API keys.", rule="R29")
    return me


@routes.post("/api/v1/api-keys")
async def create_key(request: web.Request) -> web.Response:
    me = await _owner(request)
    data = await read_json(request, {"name", "scopes"})
    name = take(data, "name", str, required=True)
    scopes = take(data, "scopes", list, required=True, item=str, max_items=len(apikeys.SCOPES))
    async with db.transaction():  # the key and its audit row commit together, or neither does
        row, key = await apikeys.create(request.app[CTX], me.practice_id, name, scopes)
        await audit_request(
            request, me, "api_key.create", "api_key", row.id, {"scopes": apikeys.scopes_of(row)}
        )
    # The key is shown here, once: only its keyed hash is stored.
    return web.json_response({**apikeys.key_json(row), "key": key}, status=201)


@routes.get("/api/v1/api-keys")
async def list_keys(request: web.Request) -> web.Response:
    me = await _owner(request)
    rows = await apikeys.list_keys(me.practice_id)
    return web.json_response({"items": [apikeys.key_json(r) for r in rows]})


@routes.delete("/api/v1/api-keys/{id}")
async def revoke_key(request: web.Request) -> web.Response:
    me = await _owner(request)
    async with db.transaction():  # the revocation and its audit row commit together, or neither does
        row = await apikeys.revoke(request.app[CTX], me.practice_id, path_int(request, "id"))
        await audit_request(
            request, me, "api_key.revoke", "api_key", row.id, {"scopes": apikeys.scopes_of(row)}
        )
    return web.json_response(apikeys.key_json(row))
