"""Records (docs/api.md §3): transcripts (R21), chart notes (R22), exports (R23) and the audit log (R24)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auditing import audit_request
from gateway.auth import require_participant
from gateway.keys import CTX, DISPATCHER
from gateway.limits import enforce
from gateway.routing import ID_SCHEMA, PERSON, cursor, limit, operation, path_id, query
from gateway.shapes import records as shapes
from gateway.typed import TIME_SCHEMA, answer, read_body
from gateway.validation import path_int, query_int
from inbox import audit, audit_view, db, exports, records
from inbox.audit_view import MAX_ACTION
from inbox.errors import Forbidden
from inbox.ids import MAX_ID

if TYPE_CHECKING:
    from inbox.models import Participant

routes = web.RouteTableDef()

CLIENT_ID = [path_id(what="client")]
EXPORT = [path_id(what="export")]
_NUMBERED = "^[0-9]+$"
_ZIP = {"type": "string", "format": "binary"}


# --- transcripts and chart notes ---------------------------------------------------------------------


@routes.get("/api/v1/clients/{id}/transcripts")
@operation(
    "get_transcript",
    "Every message of the client's conversations with the chosen participants (R21).",
    tag="records",
    security=PERSON,
    params=[
        *CLIENT_ID,
        query(
            "participants",
            {"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"},
            f"Up to {records.MAX_FILTER_IDS} participant ids, comma-separated.",
        ),
        cursor(_NUMBERED),
        limit(100, 500),
    ],
    ok={200: ("A page of the transcript.", shapes.Transcript)},
    errors=[403, 404, 422],
)
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
    return answer(page)


@routes.post("/api/v1/clients/{id}/chart-notes")
@operation(
    "create_chart_note",
    "Copy chosen messages of the client's transcript into a chart note (R22).",
    tag="records",
    security=PERSON,
    params=CLIENT_ID,
    body=shapes.NewChartNote,
    ok={201: ("Created.", shapes.ChartNote)},
    errors=[403, 404],
    description=f"More than {records.MAX_NOTE_MESSAGES} ids: 413 `too_many_items`.",
)
async def create_chart_note(request: web.Request) -> web.Response:
    me = await require_participant(request)
    client_id = path_int(request, "id")
    ids = (await read_body(request, shapes.NewChartNote)).message_ids
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
    return answer(note, status=201)


@routes.get("/api/v1/clients/{id}/chart-notes")
@operation(
    "list_chart_notes",
    "The client's chart notes, newest first.",
    tag="records",
    security=PERSON,
    params=[*CLIENT_ID, cursor(_NUMBERED), limit(50, 200)],
    ok={200: ("A page.", shapes.ChartNotes)},
    errors=[403, 404, 422],
)
async def list_chart_notes(request: web.Request) -> web.Response:
    me = await require_participant(request)
    client_id = path_int(request, "id")
    before = records.parse_message_cursor(request.query.get("cursor"), big=False)  # chart note ids
    limit = query_int(request, "limit", default=50, lo=1, hi=200) or 50
    page = await records.list_chart_notes(request.app[CTX], me, client_id, before, limit)
    await audit_request(
        request, me, "chart_note.read", "client", client_id, {"notes": [n["id"] for n in page["items"]]}
    )
    return answer(page)


# --- exports -----------------------------------------------------------------------------------------


@routes.post("/api/v1/exports")
@operation(
    "request_export",
    "Start a complete export (R23).",
    tag="records",
    security=PERSON,
    body=shapes.NewExport,
    ok={202: ("Accepted; poll GET /exports/{id}.", shapes.Export)},
    errors=[403, 429],
    description="403 `unencrypted_export_not_allowed` (R23) for `require_password: false` unless the "
    "practice's `allow_unencrypted_exports` setting is on.",
)
async def request_export(request: web.Request) -> web.Response:
    me = await require_participant(request)
    body = await read_body(request, shapes.NewExport)
    scope, clinician_id, require_password = body.scope, body.clinician_id, body.require_password
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
    return answer(exports.export_json(request.app[CTX], export, me), status=202)


@routes.get("/api/v1/exports")
@operation(
    "list_exports",
    "The practice's exports (R23: the owner, or a manager with can_export).",
    tag="records",
    security=PERSON,
    ok={200: ("Exports.", shapes.Exports)},
    errors=[403],
)
async def list_exports(request: web.Request) -> web.Response:
    me = await require_participant(request)
    rows = await exports.list_exports(me)
    ctx = request.app[CTX]
    return answer({"items": [exports.export_json(ctx, e, me) for e in rows]})


@routes.get("/api/v1/exports/{id}")
@operation(
    "get_export",
    "An export's status (and its password, for the person who asked for it).",
    tag="records",
    security=PERSON,
    params=EXPORT,
    ok={200: ("The export.", shapes.Export)},
    errors=[403, 404],
)
async def get_export(request: web.Request) -> web.Response:
    me = await require_participant(request)
    export = await exports.get_export(me, path_int(request, "id"))
    return answer(exports.export_json(request.app[CTX], export, me))


@routes.get("/api/v1/exports/{id}/download")
@operation(
    "download_export",
    "The zip.",
    tag="records",
    security=PERSON,
    params=EXPORT,
    ok={
        200: (
            "The zip (AES-encrypted when a password was asked for).",
            {"type": "string", "format": "binary"},
        )
    },
    errors=[403, 404, 409, 410],
    content_type="application/zip",
    description="409 `export_not_ready` until the export is ready; 410 `export_expired` once its "
    "file was deleted (SECUREMSG_EXPORT_RETENTION_DAYS after it was written, 7 by default). Member "
    "names are opaque (`secure-messages/conversation-0001.txt`); `index.txt` inside maps them to "
    "participants.",
)
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
@operation(
    "read_audit",
    "The audit log, oldest first (R24; the owner only).",
    tag="records",
    security=PERSON,
    params=[
        query("since", TIME_SCHEMA, "Only events at or after this time."),
        query("until", TIME_SCHEMA, "Only events before this time."),
        query("actor_id", ID_SCHEMA, "Only what this person did."),
        query(
            "action",
            {"type": "string", "maxLength": MAX_ACTION},
            'Only this action ("client.update"), or with a trailing "." every action of its family '
            '("export.").',
        ),
        query(
            "order",
            {"type": "string", "enum": ["oldest", "newest"]},
            "Oldest first (the default) or newest first.",
        ),
        cursor(_NUMBERED),
        limit(100, 500),
    ],
    ok={200: ("A page.", shapes.AuditPage)},
    errors=[403, 422],
)
async def read_audit(request: web.Request) -> web.Response:
    me = await require_participant(request)
    _require_owner(me)
    f = audit_view.AuditFilter(
        since=audit.parse_since(request.query.get("since")),
        until=audit_view.parse_until(request.query.get("until")),
        actor_id=query_int(request, "actor_id", lo=1, hi=MAX_ID),
        action=audit_view.parse_action(request.query.get("action")),
        newest=audit_view.parse_order(request.query.get("order")),
    )
    after = audit.parse_cursor(request.query.get("cursor"))
    limit = query_int(request, "limit", default=100, lo=1, hi=500) or 100
    await audit.seal(request.app[CTX], me.practice_id)  # what has committed so far, in the chain
    page = await audit_view.list_events(me.practice_id, f, after, limit)
    await audit_request(request, me, "audit.read", None, None, {"items": len(page["items"])})
    return answer(page)
