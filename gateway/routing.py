"""Each API route declares, next to its handler, what the OpenAPI document says of it: its body model, its
answers' models, who may call it and which errors it gives.

    @routes.post("/api/v1/conversations/{id}/read")
    @operation("mark_read", "Read up to a message (R15).", tag="messaging", security=PERSON,
               params=[path_id(what="conversation")], body=ReadBody,
               ok={200: ("The caller's unread total.", UnreadTotal)}, errors=[403, 404])
    async def mark_read(request): ...

gateway/openapi.py writes the document from these, and `create_app` refuses to start with an API route
that has none (`check_described`): a route cannot exist without its entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from inbox.ids import MAX_BIG_ID, MAX_ID

Schema = dict[str, Any]
Security = list[dict[str, list[str]]]
# What an answer holds: an answer model, a JSON Schema written out (a zip, the document itself), or
# nothing (a websocket's 101).
Shape = type[BaseModel] | Schema | None

PERSON: Security = [{"bearerToken": []}, {"sessionCookie": []}, {"portalCookie": []}]
MANAGER: Security = [{"apiKey": ["provisioning"]}, {"bearerToken": []}, {"sessionCookie": []}]
TEAM_OR_KEY: Security = MANAGER
OWNER: Security = [{"bearerToken": []}, {"sessionCookie": []}]
API_KEY: Security = [{"apiKey": ["integration"]}]
NONE: Security = []

ID_SCHEMA: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
BIG_ID_SCHEMA: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_BIG_ID}  # messages, deliveries


@dataclass(frozen=True)
class Operation:
    op_id: str
    summary: str
    tag: str
    security: Security
    ok: Mapping[int, tuple[str, Shape]]
    errors: Iterable[int] = ()
    body: type[BaseModel] | None = None
    params: Iterable[Schema] = ()
    description: str | None = None
    content_type: str = "application/json"
    # Written out whole where no helper fits (readyz answers its own 503).
    responses: Mapping[str, Any] = field(default_factory=dict)


H = TypeVar("H", bound=Callable[..., Any])
ATTRIBUTE = "api_operation"


def operation(
    op_id: str,
    summary: str,
    *,
    tag: str,
    security: Security,
    ok: Mapping[int, tuple[str, Shape]],
    errors: Iterable[int] = (),
    body: type[BaseModel] | None = None,
    params: Iterable[Schema] = (),
    description: str | None = None,
    content_type: str = "application/json",
    responses: Mapping[str, Any] | None = None,
) -> Callable[[H], H]:
    """Declares the handler's operation for the OpenAPI document (see the module's docstring)."""
    op = Operation(
        op_id,
        summary,
        tag,
        security,
        ok,
        tuple(errors),
        body,
        tuple(params),
        description,
        content_type,
        responses or {},
    )

    def declare(handler: H) -> H:
        setattr(handler, ATTRIBUTE, op)
        return handler

    return declare


def operation_of(handler: Any) -> Operation | None:
    op = getattr(handler, ATTRIBUTE, None)
    return op if isinstance(op, Operation) else None


def is_api(path: str) -> bool:
    return path.startswith("/api/v1/") or path in ("/healthz", "/readyz")


def check_described(app: web.Application) -> None:
    """At start: every API route has its operation, so none is missing from the document."""
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or ""
        if route.method != "HEAD" and is_api(path) and operation_of(route.handler) is None:
            raise RuntimeError(f"{route.method} {path} has no @operation: the OpenAPI document needs one")


# --- parameters -------------------------------------------------------------------------------------------


def path_id(name: str = "id", what: str = "object", schema: Schema = ID_SCHEMA) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": schema,
    }


def query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def limit(default: int, hi: int) -> Schema:
    return query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": hi, "default": default},
        "Page size (422 `invalid_query` outside its range).",
    )


def cursor(pattern: str | None = None) -> Schema:
    schema: Schema = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return query("cursor", schema, "The `next_cursor` of the previous page.")
