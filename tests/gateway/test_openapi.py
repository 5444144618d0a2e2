"""The OpenAPI description is complete and true: every /api/v1 route and ops endpoint is in it, nothing
else is, and the document is valid OpenAPI 3.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from gateway.app import create_app
from gateway.openapi import document
from tests.conftest import Api, make_config

METHODS = {"get", "put", "post", "patch", "delete"}


def served_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every API and ops route the app answers; HEAD rides along with GET."""
    app = create_app(make_config(f"sqlite://{tmp_path}/x.sqlite3", tmp_path / "var"), dev_mail=True)
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or ""
        if not (path.startswith("/api/v1/") or path in ("/healthz", "/readyz")):
            continue
        if route.method == "HEAD":
            continue
        out.add((route.method.lower(), path))
    return out


def described_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in doc["paths"].items() for method in ops if method in METHODS}


def test_every_route_is_described_and_nothing_else(tmp_path: Path) -> None:
    served = served_routes(tmp_path)
    described = described_routes(document())
    assert len(served) > 40
    assert sorted(served - described) == [], "routes the OpenAPI description does not describe"
    assert sorted(described - served) == [], "operations described that the app does not serve"


def test_document_is_valid_openapi_31() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_operation_documents_its_errors() -> None:
    doc = document()
    for path, ops in doc["paths"].items():
        for method, operation in ops.items():
            label = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert "503" in responses, label
            if operation["security"]:
                assert "401" in responses, label
            request = operation.get("requestBody")
            if request is not None:
                schema = request["content"]["application/json"]["schema"]
                assert schema["additionalProperties"] is False, label
                assert {"413", "422"} <= set(responses), label
            for status, resp in responses.items():
                if status.startswith("4"):
                    assert resp == {"$ref": f"#/components/responses/E{status}"}, label
    schemas = doc["components"]["schemas"]
    error = schemas["Error"]
    assert error["required"] == ["error"]
    detail = error["properties"]["error"]
    detail = schemas[detail["$ref"].rpartition("/")[2]] if "$ref" in detail else detail
    assert detail["required"] == ["code", "message"]


def test_every_path_parameter_is_declared() -> None:
    for path, ops in document()["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for method, operation in ops.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{method.upper()} {path}"


async def test_openapi_json_is_served(api: Api) -> None:
    status, body = await api.get("/api/v1/openapi.json")
    assert status == 200
    assert body == document()
    validate(body)
