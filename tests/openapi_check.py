"""Every answer a test gets from the API is checked against the served OpenAPI document, as Zulip's test
client does: its status must be one the operation documents, and its JSON body must match the schema
documented for that status. A test whose answer drifts from the document fails, whatever it asserts.

Used by `Api` in tests/conftest.py; requests that match no documented operation (an unknown path, a method
the path does not take) are left to the test itself.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from gateway.openapi import document

METHODS = ("get", "put", "post", "patch", "delete")


@cache
def _doc() -> dict[str, Any]:
    return document()


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for path in _doc()["paths"]:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))
        out.append((re.compile(f"^{pattern}$"), path))
    # A literal path before a templated one of the same shape (/clients/{id} after nothing literal).
    out.sort(key=lambda item: item[1].count("{"))
    return out


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    method = "get" if method.lower() == "head" else method.lower()
    for pattern, template in _templates():
        if pattern.match(path):
            op = _doc()["paths"][template].get(method)
            if op is not None:
                return f"{method.upper()} {template}", op
    return None


def _response(op: dict[str, Any], status: int) -> dict[str, Any] | None:
    responses = op["responses"]
    resp = responses.get(str(status)) or responses.get("default")
    if resp is None:
        return None
    ref = resp.get("$ref")
    if ref:
        resp = _doc()["components"]["responses"][ref.rpartition("/")[2]]
    return dict(resp)


@cache
def _validator(label: str, status: int) -> Draft202012Validator | None:
    method, _, template = label.partition(" ")
    op = _doc()["paths"][template][method.lower()]
    resp = _response(op, status)
    schema = ((resp or {}).get("content") or {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    # The components ride along at the root, so that `#/components/schemas/...` resolves.
    return Draft202012Validator({**schema, "components": _doc()["components"]})


def check_answer(method: str, path: str, status: int, content_type: str, body: Any) -> str | None:
    """What is wrong with this answer by the document, or None."""
    found = operation_for(method, path)
    if found is None:
        return None
    label, op = found
    if _response(op, status) is None:
        documented = ", ".join(sorted(op["responses"]))
        return f"{label} answered {status}, which it does not document (it documents {documented})"
    if method.upper() == "HEAD" or not content_type.startswith("application/json"):
        return None
    validator = _validator(label, status)
    if validator is None:
        return None
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(p) for p in first.absolute_path) or "(the body)"
    shown = json.dumps(body)[:2000]
    return f"{label} {status}: the answer does not match the document at {where}: {first.message}\n{shown}"
