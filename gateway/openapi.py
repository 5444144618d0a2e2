"""`GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the HTTP API (docs/api.md §3) and ops, written
from the route table: each handler's `@operation` (gateway/routing.py) and the pydantic models it names
(gateway/typed.py). Nothing here describes a route by hand.

Conventions (also in `info.description`):
- Every operation documents 500 (a fault of ours; the schemathesis run still fails on any) and 503.
- Every authenticated operation can answer 401; every operation that reads a JSON body can answer 413
  (`request_too_large`, `too_many_items`); every operation can answer 422 (a query string holding U+0000,
  if nothing else) and 503 while storage is down.
- A HEAD for every GET is answered as the GET without a body; it is not listed separately.
- Request bodies list every field the server takes and refuse any other (`additionalProperties: false`,
  answered by 422 `unknown_field`).

tests/gateway/test_openapi.py checks the document is valid and covers exactly the served routes; every
test's answer is checked against it (tests/conftest.py), and schemathesis fuzzes it
(tests/gateway/test_fuzz_schemathesis.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema

from gateway import (
    api_accounts,
    api_devices,
    api_events,
    api_keys,
    api_links,
    api_messaging,
    api_provisioning,
    api_records,
    api_webhooks,
    ops,
    ws,
)
from gateway.routing import NONE, Operation, Schema, operation, operation_of
from gateway.shapes.common import Named
from gateway.typed import Answer, absent, limit
from gateway.validation import MAX_BODY_BYTES

routes = web.RouteTableDef()

REF = "#/components/schemas/{model}"


class _Generator(GenerateJsonSchema):
    """Pydantic's schemas without titles and defaults: the document states shapes, and a default in a
    request body is the server's business (the field is simply optional)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: Any) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def model_schema(self, schema: Any) -> JsonSchemaValue:
        out = super().model_schema(schema)
        out.pop("title", None)
        return out


# --- errors and security ----------------------------------------------------------------------------------


class ErrorDetail(Answer):
    code: Annotated[str, limit(pattern="^[a-z][a-z0-9_]*$")]
    message: str
    rule: Annotated[str, limit(pattern="^R[0-9]+$")] = absent()
    field: str = absent()
    message_id: int = absent()
    practices: list[Named] = absent()  # 409 practice_required: the practices one address and password open


class Error(Answer):
    """docs/api.md's error shape."""

    error: ErrorDetail


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
    500: "A fault of ours, never the input's: `internal_error`. Nothing is half done: a change and its "
    "audit row (R24) commit together or not at all.",
    503: "Storage is briefly unavailable; try again after `Retry-After`.",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds."}}


def _error_responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, text in _ERRORS.items():
        resp: dict[str, Any] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
        }
        if status in (429, 503):
            resp["headers"] = _RETRY_AFTER
        out[f"E{status}"] = resp
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


# --- the route table ------------------------------------------------------------------------------------

# Every table of API routes, in the document's order; gateway/app.py adds exactly these.
API_TABLES: tuple[web.RouteTableDef, ...] = (
    ops.routes,
    api_provisioning.routes,
    api_accounts.routes,
    api_messaging.routes,
    api_records.routes,
    ws.routes,
    api_devices.routes,
    api_events.routes,
    api_webhooks.routes,
    api_keys.routes,
    api_links.routes,
    routes,
)


def described(tables: Iterable[web.RouteTableDef] = API_TABLES) -> list[tuple[str, str, Operation]]:
    """(method, path, operation) of every route that declares one."""
    out = []
    for table in tables:
        for route in table:
            if isinstance(route, web.RouteDef):
                op = operation_of(route.handler)
                if op is not None:
                    out.append((route.method.lower(), route.path, op))
    return out


class _Components:
    """The models the operations name, written once each under components.schemas."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}
        self.answers: list[type[BaseModel]] = [Error]

    def body(self, model: type[BaseModel]) -> Schema:
        """A request body, written out in the operation (its nested models go to the components)."""
        schema = model.model_json_schema(ref_template=REF, schema_generator=_Generator)
        self.schemas.update(schema.pop("$defs", {}))
        return schema

    def answer(self, shape: type[BaseModel] | Schema) -> Schema:
        if isinstance(shape, dict):
            return shape
        if shape not in self.answers:
            self.answers.append(shape)
        return {"$ref": REF.format(model=shape.__name__)}

    def write(self) -> dict[str, Schema]:
        _, defs = models_json_schema(
            [(m, "validation") for m in self.answers], ref_template=REF, schema_generator=_Generator
        )
        self.schemas.update(defs.get("$defs", {}))
        # Two models of one name would be written under their module paths, and the operations' refs
        # (by class name) would point nowhere: each answer model's name is unique.
        clashes = sorted(name for name in self.schemas if "__" in name)
        if clashes:
            raise RuntimeError(f"answer models share a name: {', '.join(clashes)}")
        return dict(sorted(self.schemas.items()))


def _operation(op: Operation, parts: _Components) -> dict[str, Any]:
    statuses = set(op.errors) | {422, 500, 503}  # 422: also any query string holding U+0000
    if op.security:
        statuses.add(401)
    if op.body is not None:
        statuses |= {413, 422}
    responses: dict[str, Any] = {}
    for status, (text, shape) in sorted(op.ok.items()):
        resp: dict[str, Any] = {"description": text}
        if shape is not None:
            resp["content"] = {op.content_type: {"schema": parts.answer(shape)}}
        responses[str(status)] = resp
    for status in sorted(statuses - set(op.ok)):  # readyz answers its own 503
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    responses.update(op.responses)
    out: dict[str, Any] = {
        "operationId": op.op_id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": op.security,
    }
    if op.description:
        out["description"] = op.description
    if op.params:
        out["parameters"] = list(op.params)
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": parts.body(op.body)}},
        }
    out["responses"] = dict(sorted(responses.items()))
    return out


@cache
def _document() -> str:
    parts = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in described():
        paths.setdefault(path, {})[method] = _operation(op, parts)
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
        "paths": paths,
        "components": {
            "schemas": parts.write(),
            "responses": _error_responses(),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    return json.dumps(doc, sort_keys=False)


def document() -> dict[str, Any]:
    """The OpenAPI document as a fresh dict (callers may change their copy)."""
    doc: dict[str, Any] = json.loads(_document())
    return doc


@routes.get("/api/v1/openapi.json")
@operation(
    "openapi",
    "This description.",
    tag="operations",
    security=NONE,
    ok={200: ("The OpenAPI 3.1 document.", {"type": "object"})},
)
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(text=_document(), content_type="application/json")
