"""Records (docs/api.md §3): transcripts (R21), chart notes (R22), exports (R23) and the audit log (R24)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auditing import audit_request
from gateway.auth import require_participant
from gateway.keys import CTX, DISPATCHER
from gateway.limits import enforce
from gateway.validation import path_int, query_int, read_json, take
from inbox import audit, audit_view, db, exports, records
from inbox.errors import Forbidden

if TYPE_CHECKING:
    from inbox.models import Participant

routes = web.RouteTableDef()


# --- transcripts and chart notes ---------------------------------------------------------------------


@routes.get("/api/v1/clients/{id}/transcripts")
async def get_transcript(request: web.Request) -> web.Response:
    me = await require_participant(request)
    client_id = path_int(request, "id")
    chosen = records.parse_id_list(request.query.get("participants"))
    after = records.parse_message_cursor(request.query.get("cursor"))
    limit = query_int(request, "limit", default=100, lo=1, hi=500) or 100
    page = await records.transcript(request.app[CTX], me, client_id, chosen, after, limit)
    await audit_request(
        request,
        me,
        "transcript.read",
        "client",
        client_id,
        {
            "participants": chosen,
            "conversations": [c["id"] for c in page["conversations"]][:100],
            "messages": len(page["items"]),
            "cursor": after or None,
        },
    )
    return web.json_response(page)


@routes.post("/api/v1/clients/{id}/chart-notes")
async def create_chart_note(request: web.Request) -> web.Response:
    me = await require_participant(request)
    client_id = path_int(request, "id")
    data = await read_json(request, {"message_ids"})
    ids = take(data, "message_ids", list, required=True, item=int, max_items=records.MAX_NOTE_MESSAGES)
    async with db.transaction():  # the note and its audit row commit together, or neither does
        note = await records.create_chart_note(request.app[CTX], me, client_id, ids)
        await audit_request(
            request,
            me,
            "chart_note.create",
            "chart_note",
            note["id"],
            {"client_id": client_id, "messages": ids},
        )
    return web.json_response(note, status=201)


@routes.get("/api/v1/clients/{id}/chart-notes")
async def list_chart_notes(request: web.Request) -> web.Response:
    me = await require_participant(request)
    client_id = path_int(request, "id")
    before = records.parse_message_cursor(request.query.get("cursor"), big=False)  # chart note ids
    limit = query_int(request, "limit", default=50, lo=1, hi=200) or 50
    page = await records.list_chart_notes(request.app[CTX], me, client_id, before, limit)
    await audit_request(
        request, me, "chart_note.read", "client", client_id, {"notes": [n["id"] for n in page["items"]]}
    )
    return web.json_response(page)


# --- exports -----------------------------------------------------------------------------------------


@routes.post("/api/v1/exports")
async def request_export(request: web.Request) -> web.Response:
    me = await require_participant(request)
    data = await read_json(request, {"scope", "clinician_id", "require_password"})
    scope = take(data, "scope", str, required=True)
    clinician_id = take(data, "clinician_id", int, nullable=True)
    require_password = take(data, "require_password", bool)
    if exports.may_export(me):
        await enforce(request, "export", me.id)
    async with db.transaction():  # the export and its audit row commit together, or neither does
        export = await exports.request_export(
            request.app[CTX], me, scope, clinician_id, True if require_password is None else require_password
        )
        await audit_request(
            request,
            me,
            "export.request",
            "export",
            export.id,
            {
                "scope": export.scope,
                "clinician_id": export.clinician_id,
                "require_password": export.require_password,
            },
        )
    request.app[DISPATCHER].wake()
    return web.json_response(exports.export_json(request.app[CTX], export, me), status=202)


@routes.get("/api/v1/exports")
async def list_exports(request: web.Request) -> web.Response:
    me = await require_participant(request)
    rows = await exports.list_exports(me)
    ctx = request.app[CTX]
    return web.json_response({"items": [exports.export_json(ctx, e, me) for e in rows]})


@routes.get("/api/v1/exports/{id}")
async def get_export(request: web.Request) -> web.Response:
    me = await require_participant(request)
    export = await exports.get_export(me, path_int(request, "id"))
    return web.json_response(exports.export_json(request.app[CTX], export, me))


@routes.get("/api/v1/exports/{id}/download")
async def download_export(request: web.Request) -> web.StreamResponse:
    me = await require_participant(request)
    export = await exports.get_export(me, path_int(request, "id"))
    path = await exports.download_path(request.app[CTX], export)
    await audit_request(request, me, "export.download", "export", export.id)
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="securemsg-export-{export.id}.zip"',
        },
    )


# --- the audit log -----------------------------------------------------------------------------------


def _require_owner(me: Participant) -> None:
    if me.kind != "team" or "account_owner" not in me.role_set:
        raise Forbidden("owner_only", "Only the account owner can read the audit log.", rule="R24")


@routes.get("/api/v1/audit")
async def read_audit(request: web.Request) -> web.Response:
    me = await require_participant(request)
    _require_owner(me)
    f = audit_view.AuditFilter(
        since=audit.parse_since(request.query.get("since")),
        until=audit_view.parse_until(request.query.get("until")),
        actor_id=query_int(request, "actor_id"),
        action=audit_view.parse_action(request.query.get("action")),
        newest=audit_view.parse_order(request.query.get("order")),
    )
    after = audit.parse_cursor(request.query.get("cursor"))
    limit = query_int(request, "limit", default=100, lo=1, hi=500) or 100
    await audit.seal(request.app[CTX], me.practice_id)  # what has committed so far, in the chain
    page = await audit_view.list_events(me.practice_id, f, after, limit)
    await audit_request(request, me, "audit.read", None, None, {"items": len(page["items"])})
    return web.json_response(page)
