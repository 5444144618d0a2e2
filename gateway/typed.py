"""The typed boundary: request bodies and answers as pydantic models, read with docs/api.md's 4xx errors.

A request model (`Body`) is strict (a string is never taken for a number, nor 1 for true) and forbids any
field it does not declare. `read_body` maps its errors onto the codes clients rely on: `unknown_field`,
`missing_field`, `invalid_field` (422) and `too_many_items` (413), with the field named in `error.field`.
What a field holds beyond its JSON type (a name's length, a platform's value, a message's 1 to 5,000
characters) is the domain's to refuse, with its own rule-named code; the model declares those limits for
the OpenAPI document from the very constant the domain checks (`limit(maxLength=messaging.MAX_BODY)`), so
the two cannot drift.

An answer model (`Answer`) is what a route declares it answers; gateway/openapi.py writes the document from
these and from the route table (gateway/routing.py). Answers that the domain builds as plain dicts are
declared the same way, and every test's answer is checked against the served document (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from gateway.validation import check_text, parse_json, read_raw
from inbox.errors import DomainError, Invalid, TooLarge
from inbox.ids import MAX_BIG_ID, MAX_ID

MAX_ITEMS = 500  # any list in a request, unless its field says fewer


class Body(BaseModel):
    """A request body: strict JSON types, and no field it does not declare."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Answer(BaseModel):
    """An answer's shape. Built without validation (`model_construct`, or a plain dict from the domain):
    the tests check every answer against the document instead, at no cost to a request."""

    model_config = ConfigDict(extra="forbid")


def absent() -> Any:
    """A field that may be left out but is never null: `rule: str = absent()`. In a body, leaving it out
    reads as None (and `model_dump(exclude_unset=True)` has only what was sent); a null is 422."""
    return Field(default=None)


def limit(**schema: Any) -> Any:
    """A limit the domain enforces with its own code (e.g. 422 `message_too_long`), declared for the
    document only: JSON Schema keywords (`maxLength=messaging.MAX_BODY`)."""
    return Field(json_schema_extra=schema)


def one_of(values: Iterable[str]) -> Any:
    """A string from `values` (the domain's own tuple), checked by the domain with its own code."""
    return WithJsonSchema({"type": "string", "enum": list(values)})


# --- field types: the JSON type checked here, the rest documented -----------------------------------------

TIME_SCHEMA = {"type": "string", "format": "date-time"}
Time = Annotated[str, WithJsonSchema(TIME_SCHEMA)]
_RANGE = Field(gt=-(2**62), lt=2**62)  # far past any id, inside what every database driver takes
Int = Annotated[int, _RANGE, WithJsonSchema({"type": "integer"})]
Id = Annotated[int, _RANGE, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_ID})]
BigId = Annotated[int, _RANGE, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_BIG_ID})]
# A list item's id: the whole number is checked here, whether it names anything is the domain's (404).
ItemId = Annotated[int, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_ID})]
ItemBigId = Annotated[int, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_BIG_ID})]


def items(at_most: int = MAX_ITEMS) -> Any:
    """A list's bound: more is 413 `too_many_items`."""
    return Field(max_length=at_most)


# --- reading a body ---------------------------------------------------------------------------------------

B = TypeVar("B", bound=Body)


async def read_body(request: web.Request, model: type[B]) -> B:
    """The request's JSON body as `model`, or docs/api.md's 4xx.

    The common case costs one parse: pydantic reads the raw bytes (`model_validate_json`) and only the
    accepted values are then looked through for U+0000. Anything it refuses (a lone surrogate, which its
    parser does not take, a wrong type, an unknown field) is read again the careful way, so that the error
    is exactly the one the API has always given: bad JSON, then bad characters anywhere, then unknown
    fields, then each field in the model's order."""
    raw = await read_raw(request)
    if raw.strip():
        try:
            body = model.model_validate_json(raw)
        except (ValidationError, DomainError):  # a model's own refusal comes again, in its turn, below
            pass
        else:
            for name, value in body:
                check_text(name, value)
            return body
    data = parse_json(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise refusal(exc) from None


_NOUNS = {
    "string_type": ("a string", "strings"),
    "int_type": ("a whole number", "whole numbers"),
    "bool_type": ("true or false", "true or false"),
    "list_type": ("a list", "lists"),
    "dict_type": ("an object", "objects"),
    "model_type": ("an object", "objects"),
}


def refusal(exc: ValidationError) -> DomainError:
    """A body's first problem as the API's error: unknown fields first (the first by name), then the
    model's fields in order."""
    errors = exc.errors()
    unknown = sorted(
        str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1
    )
    if unknown:
        return Invalid("unknown_field", f"Unknown field: {unknown[0]}.", field=unknown[0])
    return _one(errors[0])


def _one(error: Any) -> DomainError:  # pydantic_core.ErrorDetails
    loc = error["loc"]
    name = ".".join(str(part) for part in loc if not isinstance(part, int)) or "body"
    kind = error["type"]
    if kind == "missing":
        return Invalid("missing_field", f"{name} is required.", field=name)
    if kind == "extra_forbidden":
        return Invalid("unknown_field", f"Unknown field: {name}.", field=name)
    if kind == "too_long":
        most = (error.get("ctx") or {}).get("max_length", MAX_ITEMS)
        return TooLarge("too_many_items", f"{name} holds at most {most} items.", field=name)
    if kind in ("greater_than", "less_than", "value_error"):
        return Invalid("invalid_field", f"{name} is out of range.", field=name)
    one, many = _NOUNS.get(kind, ("valid", "valid values"))
    if isinstance(loc[-1], int):  # an item of a list
        return Invalid("invalid_field", f"{name} must be a list of {many}.", field=name)
    return Invalid("invalid_field", f"{name} must be {one}.", field=name)


# --- answering ------------------------------------------------------------------------------------------


def answer(data: Answer | dict[str, Any], status: int = 200) -> web.Response:
    """A JSON answer: an answer model (only the fields it was given) or the domain's dict."""
    if isinstance(data, Answer):
        return web.Response(
            body=data.model_dump_json(exclude_unset=True), status=status, content_type="application/json"
        )
    return web.json_response(data, status=status)
