"""`GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the HTTP API (docs/api.md §3) and ops.

Built as plain data from small helpers, once per process. The limits in it come from the modules that enforce
them, so the description cannot drift from the checks. tests/gateway/test_openapi.py walks `app.router` and
fails when a route is missing here or described here without existing; the schemathesis run
(tests/gateway/test_fuzz_schemathesis.py) fails on any answer that the description does not allow.

Conventions (also in `info.description`):
- Every authenticated operation can answer 401; every operation that reads a JSON body can answer 413
  (`request_too_large`, `too_many_items`); every operation can answer 422 (a query string holding U+0000,
  if nothing else) and 503 while storage is down.
- A HEAD for every GET is answered as the GET without a body; it is not listed separately.
- Request bodies list every field the server takes and refuse any other (`additionalProperties: false`,
  answered by 422 `unknown_field`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any

from aiohttp import web

from gateway.validation import MAX_BODY_BYTES
from inbox import apikeys, devices, exports, messaging, records, webhooks
from inbox.accounts import LOCKOUT_AFTER
from inbox.ids import MAX_BIG_ID, MAX_ID
from inbox.kinds import ROLES
from inbox.pushes import APPOINTMENT_TYPES

routes = web.RouteTableDef()

Schema = dict[str, Any]

# --- schema helpers ----------------------------------------------------------------------------------

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
NUM: Schema = {"type": "number"}
TIME: Schema = {"type": "string", "format": "date-time"}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
BIG_ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_BIG_ID}  # messages, webhook deliveries
NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 200}
EMAIL: Schema = {"type": "string", "format": "email", "maxLength": 254}
PASSWORD: Schema = {"type": "string", "minLength": 10, "maxLength": 256}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def null(schema: Schema) -> Schema:
    """The schema, or JSON null."""
    if "type" in schema and "$ref" not in schema:
        out = dict(schema)
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        out["type"] = [*kinds, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [schema, {"type": "null"}]}


def arr(items: Schema, **limits: int) -> Schema:
    return {"type": "array", "items": items, **limits}


def obj(props: dict[str, Schema], required: Iterable[str] | None = None, *, closed: bool = True) -> Schema:
    """An object; `required` defaults to every property (answers always carry every field)."""
    out: Schema = {"type": "object", "properties": props}
    names = list(props) if required is None else list(required)
    if names:
        out["required"] = names
    if closed:
        out["additionalProperties"] = False
    return out


def body(props: dict[str, Schema], required: Iterable[str] = ()) -> Schema:
    """A request body: the fields the server takes, nothing else."""
    return obj(props, list(required))


def const(value: Any) -> Schema:
    return {"const": value}


def enum(*values: Any) -> Schema:
    return {"type": "string", "enum": list(values)}


def page(item: Schema, cursor: str = "next_cursor", cursor_schema: Schema | None = None) -> Schema:
    return obj({"items": arr(item), cursor: null(cursor_schema or STR)})


def items(item: Schema) -> Schema:
    return obj({"items": arr(item)})


# --- the shapes of answers ---------------------------------------------------------------------------

_ALERTS = {flag: BOOL for flag in devices.ALERT_FLAGS}

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                    "message": STR,
                    "rule": {"type": "string", "pattern": "^R[0-9]+$"},
                    "field": STR,
                    "message_id": INT,
                },
                ["code", "message"],
            )
        }
    ),
    "Participant": obj(
        {
            "id": INT,
            "name": STR,
            "kind": enum("team", "client", "contact"),
            "roles": arr(enum(*ROLES)),
            "away": BOOL,
        }
    ),
    "Me": obj(
        {
            "id": INT,
            "name": STR,
            "kind": enum("team", "client", "contact"),
            "roles": arr(enum(*ROLES)),
            "away": BOOL,
            "email": STR,
            "messaging_enabled": BOOL,
            "can_export": BOOL,
            "totp_enabled": BOOL,
            "client_id": INT,
        },
        ["id", "name", "kind", "roles", "away", "email"],
    ),
    "Recipient": obj(
        {
            "id": INT,
            "name": STR,
            "kind": enum("team", "client", "contact"),
            "roles": arr(enum(*ROLES)),
            "away": BOOL,
            "recent": BOOL,
            "email": STR,
            "contact_of": obj({"id": INT, "name": STR}, ["id", "name"]),
            "messaging_enabled": BOOL,
            "can_enable": BOOL,
        },
        ["id", "name", "kind", "roles", "away", "recent"],
    ),
    "Away": obj({"enabled": BOOL, "message": {"type": "string", "maxLength": messaging.MAX_AWAY}}),
    "Banner": null(
        obj({"kind": const("away"), "participant_id": INT, "name": STR, "text": STR}),
    ),
    "Message": obj(
        {
            "id": INT,
            "conversation_id": INT,
            "sender_id": INT,
            "body": null(STR),
            "body_html": null(STR),
            "created_at": TIME,
            "removed": null(obj({"by": null(INT), "at": TIME})),
            "client_msg_id": null(STR),
        }
    ),
    "Conversation": obj(
        {
            "id": INT,
            "participants": arr(ref("Participant")),
            "client_id": null(INT),
            "banner": ref("Banner"),
            "created_at": TIME,
            # For a team member: the client whose own messaging is off (R4), and whether they may turn it on.
            "client_messaging_off": null(
                obj({"client_id": INT, "name": STR, "can_enable": BOOL}, ["client_id", "name", "can_enable"])
            ),
            # For a team member: why nobody can write here now, and who can change it; else null.
            "blocked": null(ref("Blocked")),
        }
    ),
    "Blocked": obj(
        {"code": STR, "rule": STR, "text": STR, "participant_id": null(INT)},
    ),
    "OpenedConversation": obj(
        {
            "id": INT,
            "participants": arr(ref("Participant")),
            "client_id": null(INT),
            "banner": ref("Banner"),
            "created_at": TIME,
            # As in Conversation: the client whose own messaging is off (R4), and whether they may turn it on.
            "client_messaging_off": null(
                obj({"client_id": INT, "name": STR, "can_enable": BOOL}, ["client_id", "name", "can_enable"])
            ),
            "message": ref("Message"),
        },
        ["id", "participants", "client_id", "banner", "created_at"],
    ),
    "ConversationSummary": obj(
        {
            "id": INT,
            "participants": arr(ref("Participant")),
            "last_message": null(ref("Message")),
            "unread_count": {"type": "integer", "minimum": 0},
            "last_activity_at": TIME,
            "banner": ref("Banner"),
        }
    ),
    "Settings": obj(
        {
            "name": STR,
            "client_messaging_enabled": BOOL,
            "team_messaging_enabled": BOOL,
            "auto_enable_new_clients": BOOL,
            "unread_email_delay_s": INT,
            "allow_unencrypted_exports": BOOL,
            "time_zone": STR,
            "time_zone_chosen": BOOL,
        }
    ),
    "TeamMember": obj(
        {
            "id": INT,
            "name": STR,
            "email": STR,
            "kind": const("team"),
            "roles": arr(enum(*ROLES)),
            "messaging_enabled": BOOL,
            "can_export": BOOL,
            "totp_enabled": BOOL,
            "away": BOOL,
            "active": BOOL,
        }
    ),
    "Client": obj(
        {
            "id": INT,
            "name": STR,
            "email": STR,
            "kind": const("client"),
            "primary_clinician_id": null(INT),
            "portal_access": BOOL,
            "messaging_enabled": BOOL,
        }
    ),
    "Contact": obj({"id": INT, "name": STR, "email": STR, "kind": const("contact"), "client_id": INT}),
    "Access": obj({"client_id": INT, "team_member_id": INT, "access": BOOL}),
    "Transcript": obj(
        {
            "client": obj({"id": INT, "name": STR}),
            "participants": arr(INT),
            # The practice's time zone: a page shows the times in it, and says so.
            "time_zone": STR,
            # `heading`: the participants' names (client, contacts, team): what messages are grouped under.
            "conversations": arr(obj({"id": INT, "participants": arr(ref("Participant")), "heading": STR})),
            "items": arr(
                obj(
                    {
                        "id": INT,
                        "conversation_id": INT,
                        "sender_id": INT,
                        "sender_name": null(STR),
                        "body": STR,
                        "created_at": TIME,
                        "removed": null(obj({"by": null(INT), "by_name": null(STR), "at": TIME})),
                    }
                )
            ),
            "next_cursor": null(STR),
        }
    ),
    "ChartNote": obj(
        {
            "id": INT,
            "client_id": INT,
            "author_id": INT,
            "author_name": null(STR),
            "text": STR,
            "message_ids": arr(INT),
            "created_at": TIME,
        }
    ),
    "Export": obj(
        {
            "id": INT,
            "status": enum("pending", "ready", "failed", exports.EXPIRED),
            "scope": enum(*exports.SCOPES),
            "clinician_id": null(INT),
            "require_password": BOOL,
            "requested_by": INT,
            "created_at": TIME,
            "finished_at": null(TIME),
            "error": null(STR),
            "download_url": null(STR),
            "expires_at": null(TIME),
            "password": STR,
        },
        [
            "id",
            "status",
            "scope",
            "clinician_id",
            "require_password",
            "requested_by",
            "created_at",
            "finished_at",
            "error",
            "download_url",
            "expires_at",
        ],
    ),
    "AuditEvent": obj(
        {
            "seq": INT,
            "at": TIME,
            "actor_id": null(INT),
            "actor_kind": STR,
            "action": STR,
            "target_type": null(STR),
            "target_id": null(STR),
            "detail": null({"type": "object"}),
            "ip": null(STR),
            "prev_hash": STR,
            "hash": STR,
        }
    ),
    "Device": obj(
        {
            "id": INT,
            "platform": enum(*devices.PLATFORMS),
            "app": enum(*devices.APPS),
            "alerts": obj(_ALERTS),
            "enabled": BOOL,
            "disabled_reason": null(STR),
            "created_at": TIME,
            "last_seen_at": TIME,
            "subscription_id": null(STR),
        }
    ),
    "ApiKey": obj(
        {
            "id": INT,
            "name": STR,
            "scopes": arr(enum(*apikeys.SCOPES)),
            "created_at": TIME,
            "last_used_at": null(TIME),
            "revoked_at": null(TIME),
        }
    ),
    "Webhook": obj(
        {"id": INT, "url": STR, "events": arr(enum(*webhooks.EVENTS)), "active": BOOL, "created_at": TIME}
    ),
    "WebhookDelivery": obj(
        {
            "id": STR,
            "event": enum(*webhooks.EVENTS),
            "status": STR,
            "attempts": INT,
            "last_status_code": null(INT),
            "last_error": null(STR),
            "created_at": TIME,
            "delivered_at": null(TIME),
            "payload": {"type": "object"},
        }
    ),
}

# --- errors, security, parameters --------------------------------------------------------------------

_ERRORS: dict[int, str] = {
    400: "Bad request (a websocket call without the upgrade handshake).",
    401: "Not signed in, or the token is not valid, expired or revoked.",
    403: "Not allowed; `error.rule` names the rule that forbids it where there is one.",
    404: "No such object, or not one of yours (another practice's ids are always 404).",
    409: "Conflict with the current state.",
    410: "Gone: the object's time is over (an export file past its retention).",
    413: "Too large: the body is over the limit, or a list holds too many items.",
    422: "Invalid input; `error.field` names the field.",
    429: "Too many requests; wait as long as `Retry-After` says.",
    503: "Storage is briefly unavailable; try again after `Retry-After`.",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds."}}


def _error_responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, text in _ERRORS.items():
        resp: dict[str, Any] = {
            "description": text,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        if status in (429, 503):
            resp["headers"] = _RETRY_AFTER
        out[str(status)] = resp
    return out


SECURITY_SCHEMES = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A person's token, from POST /api/v1/auth/login (team) or /api/v1/auth/magic "
        "(clients).",
    },
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "smk_…",
        "description": "A practice API key, sent as a bearer token: the one `securemsg create-practice` "
        "prints (both scopes), or one the account owner made at POST /api/v1/api-keys. Each operation names "
        "the scope it needs (`integration` or `provisioning`); a key without it gets 403 `key_scope` (R29).",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "securemsg_session",
        "description": "The web inbox's session cookie. Writes must also send the session's X-CSRF-Token "
        "header (else 403 `csrf_failed`).",
    },
    "portalCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "securemsg_portal",
        "description": "The client portal's session cookie; writes need X-CSRF-Token as above.",
    },
}

Security = list[dict[str, list[str]]]
PERSON: Security = [{"bearerToken": []}, {"sessionCookie": []}, {"portalCookie": []}]
MANAGER: Security = [{"apiKey": ["provisioning"]}, {"bearerToken": []}, {"sessionCookie": []}]
TEAM_OR_KEY: Security = [{"apiKey": ["provisioning"]}, {"bearerToken": []}, {"sessionCookie": []}]
OWNER: Security = [{"bearerToken": []}, {"sessionCookie": []}]
API_KEY: Security = [{"apiKey": ["integration"]}]
NONE: Security = []


def path_id(name: str = "id", what: str = "object", schema: Schema = ID) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": schema,
    }


def query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def limit(default: int, hi: int) -> dict[str, Any]:
    return query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": hi, "default": default},
        "Page size (422 `invalid_query` outside its range).",
    )


CURSOR = query("cursor", STR, "The `next_cursor` of the previous page.")


def op(
    op_id: str,
    summary: str,
    *,
    tag: str,
    security: Security,
    ok: dict[int, tuple[str, Schema | None]],
    errors: Iterable[int] = (),
    request: Schema | None = None,
    params: Iterable[dict[str, Any]] = (),
    description: str | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    statuses = set(errors) | {422, 503}  # 422: also any query string holding U+0000
    if security:
        statuses.add(401)
    if request is not None:
        statuses |= {413, 422}
    responses: dict[str, Any] = {}
    for status, (text, schema) in sorted(ok.items()):
        resp: dict[str, Any] = {"description": text}
        if schema is not None:
            resp["content"] = {content_type: {"schema": schema}}
        responses[str(status)] = resp
    for status in sorted(statuses):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    out: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag], "security": security}
    if description:
        out["description"] = description
    if params:
        out["parameters"] = list(params)
    if request is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
    out["responses"] = responses
    return out


# --- the operations ----------------------------------------------------------------------------------

_SEND = (
    f"A message holds 1 to {messaging.MAX_BODY:,} characters after trimming (R12): else 422 "
    "`empty_message` / `message_too_long`. Emoji codes (`:thumbsup:`) show as emoji in `body_html`; "
    "`body` keeps what was typed."
)
_BODY = {"type": "string", "minLength": 1, "maxLength": messaging.MAX_BODY}


def _paths() -> dict[str, dict[str, Any]]:
    v1 = "/api/v1"
    p: dict[str, dict[str, Any]] = {}

    # operations
    p["/healthz"] = {
        "get": op(
            "healthz",
            "Liveness: 200 while the process runs.",
            tag="operations",
            security=NONE,
            ok={200: ("Alive.", obj({"status": const("ok")}))},
        )
    }
    ready = obj(
        {
            "status": enum("ok", "degraded", "unavailable"),
            "checks": obj({"database": BOOL, "redis": BOOL}, ["database"]),
        }
    )
    p["/readyz"] = {
        "get": {
            **op("readyz", "Readiness.", tag="operations", security=NONE, ok={200: ("Ready.", ready)}),
            "responses": {
                "200": {
                    "description": "The database answers. `degraded`: Redis (when configured) does not; "
                    "sends still work, live events reach only this gateway's sockets.",
                    "content": {"application/json": {"schema": ready}},
                },
                "422": {"$ref": "#/components/responses/E422"},
                "503": {
                    "description": "The database is not answering.",
                    "content": {"application/json": {"schema": ready}},
                },
            },
        }
    }
    p[f"{v1}/openapi.json"] = {
        "get": op(
            "openapi",
            "This description.",
            tag="operations",
            security=NONE,
            ok={200: ("The OpenAPI 3.1 document.", {"type": "object"})},
        )
    }

    # sign-in
    login_answer = obj({"token": STR, "participant": ref("Me"), "device_token": STR})
    p[f"{v1}/auth/login"] = {
        "post": op(
            "login",
            "Team sign-in: password, then the TOTP code when enrolled.",
            tag="auth",
            security=NONE,
            request=body(
                {
                    "email": STR,
                    "password": STR,
                    "otp": null(STR),
                    "device_token": null(STR),
                    "practice_id": null(INT),
                },
                ["email", "password"],
            ),
            ok={200: ("Signed in.", login_answer)},
            errors=[401, 409, 429],
            description="401 `invalid_credentials`, `otp_required` or `invalid_otp`. A wrong password, an "
            "unknown address, a deactivated account (R26) and an account locked for 15 minutes after "
            f"{LOCKOUT_AFTER} failures all answer the same `invalid_credentials`. The answer's "
            "`device_token` marks this device as trusted: sent back with later sign-ins of the same "
            "account, they are throttled on their own and neither meet nor count towards the account's "
            "lockout (docs/security.md). An address may have an account at several practices: when the "
            "password opens more than one, 409 `practice_required` lists them (`practices: [{id, name}]`) "
            "and the sign-in is sent again with `practice_id`.",
        )
    }
    p[f"{v1}/auth/password-reset"] = {
        "post": op(
            "request_password_reset",
            "Ask for a password reset link by email (R25).",
            tag="auth",
            security=NONE,
            request=body({"email": STR}, ["email"]),
            ok={202: ("The same answer for any address.", obj({"ok": const(True), "message": STR}))},
            errors=[429],
            description="An active team member with this address gets an email with a link to "
            "`/reset/{token}`: it works once, for 30 minutes, and only the newest one does. Rate limited "
            "per address and per IP.",
        )
    }
    p[f"{v1}/me/password"] = {
        "put": op(
            "change_password",
            "Change one's own password (R25).",
            tag="auth",
            security=PERSON,
            request=body(
                {"current_password": STR, "new_password": PASSWORD}, ["current_password", "new_password"]
            ),
            ok={200: ("Changed.", obj({"ok": const(True), "ended_sessions": INT}))},
            errors=[403, 429],
            description="403 `wrong_password` when `current_password` is not right, `team_only` for a "
            "client or the API key; 422 `weak_password`. Every other session, token and trusted device of "
            "the person ends (`ended_sessions` counts the sessions and tokens); the one used stays.",
        )
    }
    p[f"{v1}/auth/logout"] = {
        "post": op(
            "logout",
            "Sign out: the token stops working and the devices it registered stop getting pushes.",
            tag="auth",
            security=PERSON,
            ok={200: ("Signed out.", obj({"ok": const(True)}))},
            errors=[403],
        )
    }
    p[f"{v1}/auth/magic"] = {
        "post": op(
            "exchange_magic_link",
            "Exchange a link token from an email for a bearer token (the client app).",
            description=(
                "A notification link (/portal/m/{token}) is not used up: it works on any number of devices "
                "until it expires or is revoked, and each token ends when the link does. An Instant Sign In "
                "link (/portal/s/{token}) is used up and gives a full session."
            ),
            tag="auth",
            security=NONE,
            request=body({"token": STR}, ["token"]),
            ok={
                200: (
                    "A session.",
                    obj({"token": STR, "participant": ref("Me"), "conversation_id": null(INT)}),
                )
            },
            errors=[401, 429],
        )
    }

    # provisioning
    settings_body = body(
        {
            "client_messaging_enabled": BOOL,
            "team_messaging_enabled": BOOL,
            "auto_enable_new_clients": BOOL,
            "unread_email_delay_s": {"type": "integer", "minimum": 600, "maximum": 1200},
            "name": NAME,
            "allow_unencrypted_exports": BOOL,
            "time_zone": {"type": "string", "minLength": 1, "maxLength": 64},
        }
    )
    p[f"{v1}/practice/settings"] = {
        "get": op(
            "get_settings",
            "The practice's messaging settings.",
            tag="provisioning",
            security=MANAGER,
            ok={200: ("Settings.", ref("Settings"))},
            errors=[403],
        ),
        "patch": op(
            "patch_settings",
            "Change the practice's messaging settings (R1, R2, R17).",
            tag="provisioning",
            security=MANAGER,
            request=settings_body,
            ok={200: ("Settings.", ref("Settings"))},
            errors=[400, 403, 409],
            description="409 `team_messaging_off` (R1) when client messaging is turned on while the "
            "team's is off. `allow_unencrypted_exports` (R23, default false) lets exports be asked for "
            "without a password. `time_zone` is an IANA zone name (`America/New_York`); another is 400 "
            "`invalid_field`.",
        ),
    }
    roles = arr(enum(*ROLES), minItems=1, maxItems=len(ROLES))
    p[f"{v1}/team-members"] = {
        "get": op(
            "list_team",
            "The practice's active team members.",
            tag="provisioning",
            security=TEAM_OR_KEY,
            params=[query("include_inactive", enum("0", "1", "true"), "`1`: deactivated members too (R26).")],
            ok={200: ("Team members.", items(ref("TeamMember")))},
            errors=[403],
        ),
        "post": op(
            "create_team_member",
            "Add a team member.",
            tag="provisioning",
            security=MANAGER,
            request=body(
                {
                    "name": NAME,
                    "email": EMAIL,
                    "roles": roles,
                    "password": null(PASSWORD),
                    "can_export": BOOL,
                    "messaging_enabled": BOOL,
                },
                ["name", "email", "roles"],
            ),
            ok={201: ("Created.", ref("TeamMember"))},
            errors=[403, 409],
            description="409 `email_taken` when a team member of this practice has the address (another "
            "practice's members are not looked at). Without `password`, the new member gets an "
            "invitation email with a link to choose one (valid 7 days). "
            "`can_export` holds only for an owner or practice manager. "
            "Only the account owner makes an account owner (403 `owner_only` for a manager or any API key, "
            "R29); only the owner or an API key sets `can_export` (403 `owner_only` for a manager).",
        ),
    }
    p[f"{v1}/team-members/{{id}}"] = {
        "patch": op(
            "patch_team_member",
            "Change a team member (R3: messaging_enabled).",
            tag="provisioning",
            security=MANAGER,
            params=[path_id(what="team member")],
            request=body(
                {
                    "messaging_enabled": BOOL,
                    "roles": roles,
                    "can_export": BOOL,
                    "name": NAME,
                    "active": BOOL,
                    "password": PASSWORD,
                }
            ),
            ok={200: ("Changed.", ref("TeamMember"))},
            errors=[403, 404, 409],
            description="Only the account owner changes an account owner or makes one: 403 `owner_only` "
            "for a practice manager or an API key (R29). Only the owner or an API key sets `can_export` "
            "(R23): 403 `owner_only` for a practice manager. `password` is always "
            "refused: 403 `password_is_personal` (R25). `active: true` reactivates a deactivated member, "
            "`active: false` deactivates like DELETE (R26).",
        ),
        "delete": op(
            "deactivate_team_member",
            "Deactivate a team member who leaves (R26).",
            tag="provisioning",
            security=MANAGER,
            params=[path_id(what="team member")],
            ok={200: ("Deactivated (again: nothing changes).", ref("TeamMember"))},
            errors=[403, 404, 409],
            description="Sign-in is then refused like a wrong password; every session, token, link, "
            "trusted device and push device of the member ends; what they wrote stays in transcripts "
            "and exports. 409 `last_account_owner`; a practice manager deactivating an account owner: "
            "403 `owner_only`.",
        ),
    }
    p[f"{v1}/team-members/{{id}}/totp"] = {
        "post": op(
            "enrol_totp",
            "Enrol or replace a TOTP second factor (the member's own token, with the password).",
            tag="provisioning",
            security=PERSON,
            params=[path_id(what="team member")],
            request=body({"password": PASSWORD, "otp": null(STR)}, ["password"]),
            ok={200: ("The otpauth:// URI to show as a QR code.", obj({"provisioning_uri": STR}))},
            errors=[403, 404, 429],
            description="R30: the password is asked again (403 `invalid_password`), and when a factor is "
            "already on, the code it shows now (403 `otp_required` / `invalid_otp`; a code works once). "
            "Failures count towards the sign-in lockout (403 `account_locked`). Turns the new factor on at "
            "once, replacing the old one.",
        )
    }
    client_fields: dict[str, Schema] = {
        "name": NAME,
        "email": EMAIL,
        "primary_clinician_id": null(ID),
        "portal_access": BOOL,
        "messaging_enabled": BOOL,
    }
    p[f"{v1}/clients"] = {
        "get": op(
            "list_clients",
            "The clients this caller may message or read (R28).",
            tag="provisioning",
            security=TEAM_OR_KEY,
            ok={200: ("Clients.", items(ref("Client")))},
            errors=[403],
            description="Billers, schedulers, practice managers, account owners and API keys: every client. "
            "Clinicians and supervisors: the clients they are primary clinician of or were granted access "
            "to (R5, R7, R21). Clients and contacts: 403 `team_only`.",
        ),
        "post": op(
            "create_client",
            "Add a client; messaging starts as the practice's auto_enable_new_clients says (R2).",
            tag="provisioning",
            security=MANAGER,
            request=body(client_fields, ["name", "email"]),
            ok={201: ("Created.", ref("Client"))},
            errors=[403],
        ),
    }
    p[f"{v1}/clients/{{id}}"] = {
        "get": op(
            "get_client",
            "One client, when the caller may see it (R28): else 404, as for another practice's.",
            tag="provisioning",
            security=TEAM_OR_KEY,
            params=[path_id(what="client")],
            ok={200: ("The client.", ref("Client"))},
            errors=[403, 404],
        ),
        "patch": op(
            "patch_client",
            "Change a client; turning messaging or portal access off ends its links and sessions (R4).",
            tag="provisioning",
            security=TEAM_OR_KEY,
            params=[path_id(what="client")],
            request=body(client_fields),
            ok={200: ("Changed.", ref("Client"))},
            errors=[403, 404],
            description="Owners, practice managers and the API key change any field. A clinician or "
            "supervisor may send only `{messaging_enabled: true}`, for a client they have access to "
            "(R5), with an audit row: anything else is 403 `managers_only`; a client they may not see "
            "is 404 (R28); a clinician who also holds a role that sees every client but has no access "
            "is 403 `clinician_without_client_access`.",
        ),
    }
    p[f"{v1}/clients/{{id}}/contacts"] = {
        "get": op(
            "list_contacts",
            "The client's contacts, when the caller may see the client (R28): else 404.",
            tag="provisioning",
            security=TEAM_OR_KEY,
            params=[path_id(what="client")],
            ok={200: ("Contacts.", items(ref("Contact")))},
            errors=[403, 404],
        ),
        "post": op(
            "add_contact",
            "Add a contact (a guardian, say) who takes part in the client's conversations (R10).",
            tag="provisioning",
            security=MANAGER,
            params=[path_id(what="client")],
            request=body({"name": NAME, "email": EMAIL}, ["name", "email"]),
            ok={201: ("Created.", ref("Contact"))},
            errors=[403, 404],
        ),
    }
    p[f"{v1}/clients/{{id}}/access"] = {
        "get": op(
            "list_access",
            "Who has access to the client's profile: the primary clinician and the grants (R5, R21).",
            tag="provisioning",
            security=MANAGER,
            params=[path_id(what="client")],
            ok={200: ("Access.", obj({"primary_clinician_id": null(INT), "team_member_ids": arr(INT)}))},
            errors=[403, 404],
        )
    }
    access_params = [path_id(what="client"), path_id("member_id", "team member")]
    p[f"{v1}/clients/{{id}}/access/{{member_id}}"] = {
        "put": op(
            "grant_access",
            "Grant a team member access to the client's profile (R5, R7, R21).",
            tag="provisioning",
            security=MANAGER,
            params=access_params,
            ok={200: ("Already granted.", ref("Access")), 201: ("Granted.", ref("Access"))},
            errors=[403, 404],
        ),
        "delete": op(
            "withdraw_access",
            "Withdraw a team member's access to the client's profile.",
            tag="provisioning",
            security=MANAGER,
            params=access_params,
            ok={200: ("Withdrawn.", ref("Access"))},
            errors=[403, 404],
        ),
    }

    # messaging
    p[f"{v1}/me"] = {
        "get": op(
            "me",
            "Who is calling, the unread total (R15) and the away state (R20).",
            tag="messaging",
            security=PERSON,
            ok={200: ("Me.", obj({"participant": ref("Me"), "unread_total": INT, "away": ref("Away")}))},
            errors=[403],
        )
    }
    p[f"{v1}/me/away"] = {
        "put": op(
            "put_away",
            "Turn the away message on or off (R20, team members only).",
            tag="messaging",
            security=PERSON,
            request=body(
                {"enabled": BOOL, "message": null({"type": "string", "maxLength": messaging.MAX_AWAY})},
                ["enabled"],
            ),
            ok={200: ("The away state.", ref("Away"))},
            errors=[403],
            description=f"422 `away_message_too_long` over {messaging.MAX_AWAY} characters.",
        )
    }
    p[f"{v1}/recipients"] = {
        "get": op(
            "recipients",
            "People the caller may message: recently messaged first, then matches for q (a first-name prefix "
            "match first, then another word's, then the rest). A team member's rows also carry `email`, and "
            "a contact's `contact_of`.",
            tag="messaging",
            security=PERSON,
            params=[
                query("q", STR, "Part of a name or email address."),
                query(
                    "include_disabled",
                    STR,
                    '"1" or "true": also clients whose own messaging is off but who could be messaged once '
                    "it is on, with `messaging_enabled: false` and `can_enable` (owners and managers, and a "
                    "clinician or supervisor with access to the client: R4, R5).",
                ),
                limit(20, 100),
            ],
            ok={
                200: (
                    "Recipients, and for a team member `notices`: who cannot be messaged now and why.",
                    obj({"items": arr(ref("Recipient")), "notices": arr(ref("Blocked"))}),
                )
            },
            errors=[403, 422],
        )
    }
    p[f"{v1}/conversations"] = {
        "get": op(
            "list_conversations",
            "The caller's conversations, newest activity first.",
            tag="messaging",
            security=PERSON,
            params=[CURSOR, limit(30, 100)],
            ok={200: ("A page.", page(ref("ConversationSummary")))},
            errors=[403, 422],
        ),
        "post": op(
            "open_conversation",
            "Open the exchange for a set of participants (R11), optionally with a first message.",
            tag="messaging",
            security=PERSON,
            request=body(
                {
                    "participant_ids": arr(ID, minItems=1, maxItems=messaging.MAX_PARTICIPANTS),
                    "body": null(_BODY),
                },
                ["participant_ids"],
            ),
            ok={
                200: ("The existing exchange for the same set.", ref("OpenedConversation")),
                201: ("A new conversation.", ref("OpenedConversation")),
            },
            errors=[403, 404, 429],
            description="403 names the rule that forbids it (`error.rule`, R5–R10). More than "
            f"{messaging.MAX_PARTICIPANTS} ids: 413 `too_many_items`. " + _SEND,
        ),
    }
    conv = [path_id(what="conversation")]
    p[f"{v1}/conversations/{{id}}"] = {
        "get": op(
            "get_conversation",
            "A conversation: participants and the away banner (R20).",
            tag="messaging",
            security=PERSON,
            params=conv,
            ok={200: ("The conversation.", ref("Conversation"))},
            errors=[403, 404],
        )
    }
    p[f"{v1}/conversations/{{id}}/messages"] = {
        "get": op(
            "list_messages",
            "A page of messages, oldest to newest; removed ones have body null (R14).",
            tag="messaging",
            security=PERSON,
            params=[
                *conv,
                query("before", BIG_ID, "The `next_before` of the previous page."),
                limit(50, 200),
            ],
            ok={200: ("A page.", page(ref("Message"), "next_before", INT))},
            errors=[403, 404, 422],
        ),
        "post": op(
            "send_message",
            "Send a message; the same client_msg_id again returns the first message (200).",
            tag="messaging",
            security=PERSON,
            params=conv,
            request=body(
                {"body": _BODY, "client_msg_id": null({"type": "string", "minLength": 1, "maxLength": 100})},
                ["body"],
            ),
            ok={
                200: (
                    "A repeat of an earlier client_msg_id.",
                    obj({"message": ref("Message"), "banner": ref("Banner")}),
                ),
                201: ("Sent.", obj({"message": ref("Message"), "banner": ref("Banner")})),
            },
            errors=[403, 404, 409, 429],
            description=_SEND + " 409 `client_msg_id_reused` when the id was used in another conversation.",
        ),
    }
    p[f"{v1}/conversations/{{id}}/read"] = {
        "post": op(
            "mark_read",
            "Read up to a message: clears that part of the unread count (R15).",
            tag="messaging",
            security=PERSON,
            params=conv,
            request=body({"up_to_message_id": BIG_ID}, ["up_to_message_id"]),
            ok={200: ("The caller's unread total.", obj({"unread_total": INT}))},
            errors=[403, 404],
        )
    }
    p[f"{v1}/messages/{{id}}"] = {
        "delete": op(
            "remove_message",
            "The sender removes a message (R14).",
            tag="messaging",
            security=PERSON,
            params=[path_id(what="message", schema=BIG_ID)],
            ok={200: ("Removed (also when it was already).", obj({"message": ref("Message")}))},
            errors=[403, 404],
        )
    }

    # records
    client = [path_id(what="client")]
    p[f"{v1}/clients/{{id}}/transcripts"] = {
        "get": op(
            "get_transcript",
            "Every message of the client's conversations with the chosen participants (R21).",
            tag="records",
            security=PERSON,
            params=[
                *client,
                query(
                    "participants",
                    {"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"},
                    f"Up to {records.MAX_FILTER_IDS} participant ids, comma-separated.",
                ),
                query(
                    "cursor",
                    {"type": "string", "pattern": "^[0-9]+$"},
                    "The `next_cursor` of the previous page.",
                ),
                limit(100, 500),
            ],
            ok={200: ("A page of the transcript.", ref("Transcript"))},
            errors=[403, 404, 422],
        )
    }
    p[f"{v1}/clients/{{id}}/chart-notes"] = {
        "get": op(
            "list_chart_notes",
            "The client's chart notes, newest first.",
            tag="records",
            security=PERSON,
            params=[
                *client,
                query(
                    "cursor",
                    {"type": "string", "pattern": "^[0-9]+$"},
                    "The `next_cursor` of the previous page.",
                ),
                limit(50, 200),
            ],
            ok={200: ("A page.", page(ref("ChartNote")))},
            errors=[403, 404, 422],
        ),
        "post": op(
            "create_chart_note",
            "Copy chosen messages of the client's transcript into a chart note (R22).",
            tag="records",
            security=PERSON,
            params=client,
            request=body(
                {"message_ids": arr(BIG_ID, minItems=1, maxItems=records.MAX_NOTE_MESSAGES)}, ["message_ids"]
            ),
            ok={201: ("Created.", ref("ChartNote"))},
            errors=[403, 404],
            description=f"More than {records.MAX_NOTE_MESSAGES} ids: 413 `too_many_items`.",
        ),
    }
    p[f"{v1}/exports"] = {
        "get": op(
            "list_exports",
            "The practice's exports (R23: the owner, or a manager with can_export).",
            tag="records",
            security=PERSON,
            ok={200: ("Exports.", items(ref("Export")))},
            errors=[403],
        ),
        "post": op(
            "request_export",
            "Start a complete export (R23).",
            tag="records",
            security=PERSON,
            request=body(
                {"scope": enum(*exports.SCOPES), "clinician_id": null(ID), "require_password": BOOL},
                ["scope"],
            ),
            ok={202: ("Accepted; poll GET /exports/{id}.", ref("Export"))},
            errors=[403, 429],
            description="403 `unencrypted_export_not_allowed` (R23) for `require_password: false` unless the "
            "practice's `allow_unencrypted_exports` setting is on.",
        ),
    }
    export = [path_id(what="export")]
    p[f"{v1}/exports/{{id}}"] = {
        "get": op(
            "get_export",
            "An export's status (and its password, for the person who asked for it).",
            tag="records",
            security=PERSON,
            params=export,
            ok={200: ("The export.", ref("Export"))},
            errors=[403, 404],
        )
    }
    p[f"{v1}/exports/{{id}}/download"] = {
        "get": op(
            "download_export",
            "The zip.",
            tag="records",
            security=PERSON,
            params=export,
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
    }
    p[f"{v1}/audit"] = {
        "get": op(
            "read_audit",
            "The audit log, oldest first (R24; the owner only).",
            tag="records",
            security=PERSON,
            params=[
                query("since", TIME, "Only events at or after this time."),
                query("until", TIME, "Only events before this time."),
                query("actor_id", INT, "Only what this person did."),
                query(
                    "action",
                    {"type": "string", "maxLength": 48},
                    'Only this action ("client.update"), or with a trailing "." every action of its family '
                    '("export.").',
                ),
                query("order", enum("oldest", "newest"), "Oldest first (the default) or newest first."),
                query(
                    "cursor",
                    {"type": "string", "pattern": "^[0-9]+$"},
                    "The `next_cursor` of the previous page.",
                ),
                limit(100, 500),
            ],
            ok={200: ("A page.", page(ref("AuditEvent")))},
            errors=[403, 422],
        )
    }

    # realtime
    p[f"{v1}/ws"] = {
        "get": op(
            "websocket",
            "The websocket (docs/api.md §4): one JSON event per frame.",
            tag="realtime",
            security=PERSON,
            ok={101: ("Switching protocols.", None)},
            errors=[400, 403],
        )
    }

    # devices
    p[f"{v1}/devices"] = {
        "get": op(
            "list_devices",
            "The caller's devices.",
            tag="devices",
            security=PERSON,
            ok={200: ("Devices.", items(ref("Device")))},
            errors=[403],
        ),
        "post": op(
            "register_device",
            "Register a phone or a browser for pushes (R19): a phone with its `token`, a browser (platform "
            "`webpush`) with its Push API `subscription` (`PushSubscription.toJSON()`: an https endpoint, "
            "keys.p256dh of 65 bytes and keys.auth of 16, base64url). The same token or endpoint again is "
            "the same device.",
            tag="devices",
            security=PERSON,
            request=body(
                {
                    "platform": enum(*devices.PLATFORMS),
                    "token": {"type": "string", "minLength": 20, "maxLength": 512},
                    "subscription": obj(
                        {
                            "endpoint": {"type": "string", "maxLength": devices.MAX_ENDPOINT},
                            "expirationTime": null(NUM),
                            "keys": obj({"p256dh": STR, "auth": STR}),
                        },
                        ["endpoint", "keys"],
                    ),
                    "app": enum(*devices.APPS),
                },
                ["platform", "app"],
            ),
            ok={201: ("Registered.", ref("Device"))},
            errors=[403],
        ),
    }
    p[f"{v1}/webpush/vapid-public-key"] = {
        "get": op(
            "get_vapid_public_key",
            "The server's VAPID public key (RFC 8292), for the browser's pushManager.subscribe "
            "`applicationServerKey`: the uncompressed P-256 point, base64url.",
            tag="devices",
            security=PERSON,
            ok={200: ("The key.", obj({"public_key": STR}))},
            errors=[403],
        ),
    }
    device = [path_id(what="device")]
    p[f"{v1}/devices/{{id}}"] = {
        "patch": op(
            "update_device",
            "Turn the device's four alert types on or off.",
            tag="devices",
            security=PERSON,
            params=device,
            request=body({"alerts": obj(_ALERTS, [])}, ["alerts"]),
            ok={200: ("The device.", ref("Device"))},
            errors=[403, 404],
        ),
        "delete": op(
            "remove_device",
            "Unregister a device.",
            tag="devices",
            security=PERSON,
            params=device,
            ok={200: ("Removed.", obj({"ok": const(True)}))},
            errors=[403, 404],
        ),
    }

    # API keys (R29)
    p[f"{v1}/api-keys"] = {
        "get": op(
            "list_api_keys",
            "The practice's API keys, revoked ones too; never the keys themselves.",
            tag="auth",
            security=OWNER,
            ok={200: ("Keys.", items(ref("ApiKey")))},
            errors=[403],
            description="The account owner only (not a manager, not a key): else 403 `owner_only` / "
            "`participant_required`.",
        ),
        "post": op(
            "create_api_key",
            "Make a key with scopes `integration` (events, webhooks) and/or `provisioning` (people, "
            "settings, access).",
            tag="auth",
            security=OWNER,
            request=body(
                {
                    "name": {"type": "string", "minLength": 1, "maxLength": apikeys.MAX_NAME},
                    "scopes": arr(enum(*apikeys.SCOPES), minItems=1, maxItems=len(apikeys.SCOPES)),
                },
                ["name", "scopes"],
            ),
            ok={
                201: (
                    "Created; the key is shown only here.",
                    obj({**SCHEMAS["ApiKey"]["properties"], "key": STR}),
                )
            },
            errors=[403],
            description="The account owner only: 403 `owner_only` / `participant_required`. 422 "
            "`invalid_scopes`, `invalid_name`, `too_many_api_keys`. A key never sets a password of an "
            "existing account nor holds, gives or changes the account owner's role (R29).",
        ),
    }
    p[f"{v1}/api-keys/{{id}}"] = {
        "delete": op(
            "revoke_api_key",
            "Revoke a key: its next call is refused (401). Revoking again changes nothing.",
            tag="auth",
            security=OWNER,
            params=[path_id(what="API key")],
            ok={200: ("Revoked.", ref("ApiKey"))},
            errors=[403, 404],
        )
    }

    # integration
    p[f"{v1}/events"] = {
        "post": op(
            "post_event",
            "An appointment event: a push to that participant's devices that opted in.",
            tag="integration",
            security=API_KEY,
            request=body(
                {
                    "type": enum(*APPOINTMENT_TYPES),
                    "participant_id": ID,
                    "appointment_id": {
                        "oneOf": [
                            {"type": "integer", "minimum": 1},
                            {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$"},
                        ]
                    },
                    "starts_at": TIME,
                },
                ["type", "participant_id", "appointment_id", "starts_at"],
            ),
            ok={202: ("Accepted.", obj({"status": const("accepted"), "id": INT}))},
            errors=[403, 404],
        )
    }
    p[f"{v1}/webhooks"] = {
        "get": op(
            "list_webhooks",
            "The practice's active webhooks.",
            tag="integration",
            security=API_KEY,
            ok={200: ("Webhooks.", items(ref("Webhook")))},
            errors=[403],
        ),
        "post": op(
            "create_webhook",
            "Subscribe a URL to events; deliveries carry ids only, signed with HMAC-SHA256.",
            tag="integration",
            security=API_KEY,
            request=body(
                {
                    "url": {"type": "string", "format": "uri", "maxLength": webhooks.MAX_URL},
                    "events": arr(enum(*webhooks.EVENTS), minItems=1, maxItems=len(webhooks.EVENTS)),
                },
                ["url", "events"],
            ),
            ok={
                201: (
                    "Created; the secret is shown only here.",
                    obj(
                        {
                            "id": INT,
                            "url": STR,
                            "events": arr(enum(*webhooks.EVENTS)),
                            "active": BOOL,
                            "created_at": TIME,
                            "secret": STR,
                        }
                    ),
                )
            },
            errors=[403, 409],
            description=f"409 `too_many_webhooks` past {webhooks.MAX_WEBHOOKS_PER_PRACTICE}. 422 "
            "`webhook_url_not_public` for a loopback, private or other non-public address literal or "
            "`localhost` (unless SECUREMSG_WEBHOOK_ALLOW_PRIVATE is set); a name that resolves to one is "
            'refused at delivery, which then fails with `last_error` "refused: not a public address".',
        ),
    }
    hook = [path_id(what="webhook")]
    p[f"{v1}/webhooks/{{id}}"] = {
        "delete": op(
            "delete_webhook",
            "Stop a webhook; its history stays.",
            tag="integration",
            security=API_KEY,
            params=hook,
            ok={200: ("Stopped.", ref("Webhook"))},
            errors=[403, 404],
        )
    }
    p[f"{v1}/webhooks/{{id}}/deliveries"] = {
        "get": op(
            "list_deliveries",
            "Recent deliveries, newest first, with status, attempts and last error.",
            tag="integration",
            security=API_KEY,
            params=[
                *hook,
                query("before", BIG_ID, "The `next_before` of the previous page."),
                limit(50, 200),
            ],
            ok={200: ("A page.", page(ref("WebhookDelivery"), "next_before", INT))},
            errors=[403, 404, 422],
        )
    }
    return p


@cache
def _document() -> str:
    doc = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "securemsg",
            "version": "1",
            "description": (
                "Secure messaging and mobile push for health practices. Every error is "
                '`{"error": {"code", "message", "rule"?, "field"?}}` with a 4xx status (503 while storage '
                "is down); another practice's ids are always 404. Every authenticated operation can "
                f"answer 401; every operation with a JSON body can answer 413 (over {MAX_BODY_BYTES // 1024} "
                "KiB, or a list over its limit) and 422 (invalid, or an unknown field). Text anywhere in a "
                "request (body, query, form) must not hold U+0000: 422 `invalid_character` / "
                "`invalid_query`. Ids run from 1 to 2^31-1 (2^63-1 for messages and webhook deliveries): "
                "a larger one is a 404 in a path, a 422 in a cursor. HEAD is answered for every GET. "
                "Every answer carries `X-Request-Id`: the caller's own when sane (1-128 of "
                "`A-Za-z0-9._:=+-`), else a new one; the server's log lines for the request carry it too."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": t}
            for t in (
                "auth",
                "provisioning",
                "messaging",
                "records",
                "devices",
                "integration",
                "realtime",
                "operations",
            )
        ],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "responses": {f"E{status}": resp for status, resp in _error_responses().items()},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    return json.dumps(doc, sort_keys=False)


def document() -> dict[str, Any]:
    """The OpenAPI document as a fresh dict (callers may change their copy)."""
    doc: dict[str, Any] = json.loads(_document())
    return doc


@routes.get("/api/v1/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(text=_document(), content_type="application/json")
