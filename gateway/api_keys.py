"""API keys for the practice's other systems (docs/api.md §3, R29): the owner creates, lists, revokes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auditing import audit_request
from gateway.auth import require_participant
from gateway.keys import CTX
from gateway.routing import OWNER, operation, path_id
from gateway.shapes import integration as shapes
from gateway.typed import answer, read_body
from gateway.validation import path_int
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
@operation(
    "create_api_key",
    "Make a key with scopes `integration` (events, webhooks) and/or `provisioning` (people, "
    "settings, access).",
    tag="auth",
    security=OWNER,
    body=shapes.NewApiKey,
    ok={201: ("Created; the key is shown only here.", shapes.NewKey)},
    errors=[403],
    description="The account owner only: 403 `owner_only` / `participant_required`. 422 "
    "`invalid_scopes`, `invalid_name`, `too_many_api_keys`. A key never sets a password of an "
    "existing account nor holds, gives or changes the account owner's role (R29).",
)
async def create_key(request: web.Request) -> web.Response:
    me = await _owner(request)
    body = await read_body(request, shapes.NewApiKey)
    name, scopes = body.name, body.scopes
    async with db.transaction():  # the key and its audit row commit together, or neither does
        row, key = await apikeys.create(request.app[CTX], me.practice_id, name, scopes)
        await audit_request(
            request, me, "api_key.create", "api_key", row.id, {"scopes": apikeys.scopes_of(row)}
        )
    # The key is shown here, once: only its keyed hash is stored.
    return answer({**apikeys.key_json(row), "key": key}, status=201)


@routes.get("/api/v1/api-keys")
@operation(
    "list_api_keys",
    "The practice's API keys, revoked ones too; never the keys themselves.",
    tag="auth",
    security=OWNER,
    ok={200: ("Keys.", shapes.ApiKeys)},
    errors=[403],
    description="The account owner only (not a manager, not a key): else 403 `owner_only` / "
    "`participant_required`.",
)
async def list_keys(request: web.Request) -> web.Response:
    me = await _owner(request)
    rows = await apikeys.list_keys(me.practice_id)
    return answer({"items": [apikeys.key_json(r) for r in rows]})


@routes.delete("/api/v1/api-keys/{id}")
@operation(
    "revoke_api_key",
    "Revoke a key: its next call is refused (401). Revoking again changes nothing.",
    tag="auth",
    security=OWNER,
    params=[path_id(what="API key")],
    ok={200: ("Revoked.", shapes.ApiKey)},
    errors=[403, 404],
)
async def revoke_key(request: web.Request) -> web.Response:
    me = await _owner(request)
    async with db.transaction():  # the revocation and its audit row commit together, or neither does
        row = await apikeys.revoke(request.app[CTX], me.practice_id, path_int(request, "id"))
        await audit_request(
            request, me, "api_key.revoke", "api_key", row.id, {"scopes": apikeys.scopes_of(row)}
        )
    return answer(apikeys.key_json(row))
