"""schemathesis against GET /api/v1/openapi.json: every operation, fuzzed on a real server on a loopback port,
as the people the operation is for (the owner and a clinician for a person's token, the practice API key where
the operation takes it). Checks: no 5xx, every status documented, every answer conforms to its schema.

Bounded and repeatable for CI: a fixed number of examples per operation, Hypothesis derandomised, no example
database. Ids in paths and bodies are drawn half the time from the ids that exist in the seeded practice, so
the fuzzing reaches past the 404s. Each finding is kept as a named test in test_regressions_fuzz.py. A quarter of the JSON bodies get
a lone surrogate in one string (`with_lone_surrogate`), and an eighth a value nested deeper than the server
takes (`with_deep_nesting`), sent as raw JSON text: the schema generator makes neither.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from tortoise.backends.base import executor

from gateway.openapi import document
from inbox.clock import FakeClock
from tests.conftest import _pg_exec, _with_db, make_config, need, postgres_url
from tests.gateway.fuzz_seed import FuzzWorld, reset_world, seed_world
from tests.gateway.live_server import LiveServer

# Examples per operation and caller: valid input, then input that breaks the description.
MAX_EXAMPLES = {
    GenerationMode.POSITIVE: int(os.environ.get("SECUREMSG_FUZZ_EXAMPLES", "25")),
    GenerationMode.NEGATIVE: int(os.environ.get("SECUREMSG_FUZZ_INVALID_EXAMPLES", "15")),
}
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
WRITES = {"post", "put", "patch", "delete"}


def _callers(operation: dict[str, Any]) -> list[str]:
    schemes = {name for requirement in operation["security"] for name in requirement}
    if not schemes:
        return ["anonymous"]
    out = []
    if "bearerToken" in schemes:
        out.append("owner")
        if "apiKey" not in schemes:  # provisioning: a clinician only ever gets 403 there
            out.append("clinician")
    if "apiKey" in schemes:
        out.append("api_key")
    return out


def _operations() -> list[Any]:
    out = []
    for path, ops in document()["paths"].items():
        if path == "/api/v1/ws":  # a websocket handshake, not request/response: see test_websocket.py
            continue
        for method, operation in ops.items():
            modes = [GenerationMode.POSITIVE]
            if operation.get("parameters") or operation.get("requestBody"):
                modes.append(GenerationMode.NEGATIVE)  # there is something to get wrong
            for caller in _callers(operation):
                for mode in modes:
                    label = "valid" if mode is GenerationMode.POSITIVE else "invalid"
                    out.append(
                        pytest.param(
                            method, path, caller, mode, id=f"{method.upper()} {path} as {caller}, {label}"
                        )
                    )
    return out


# Which ids exist for each path segment or body field that names an id (FuzzWorld.ids).
_KINDS = {
    "team-members": "team",
    "member_id": "team",
    "clinician_id": "team",
    "primary_clinician_id": "team",
    "clients": "clients",
    "conversations": "conversations",
    "messages": "messages",
    "up_to_message_id": "messages",
    "message_ids": "messages",
    "before": "messages",
    "exports": "exports",
    "devices": "devices",
    "webhooks": "webhooks",
    "participant_ids": "people",
    "participant_id": "people",
}


def _pool(world: FuzzWorld, name: str) -> list[int]:
    return world.ids.get(_KINDS.get(name, ""), []) or world.all_ids()


def use_real_ids(case: schemathesis.Case, world: FuzzWorld, data: st.DataObject) -> None:
    """Half the time, each id in the path or the body becomes one that exists in the seeded practice.

    (An `anyOf` with an `enum` of real ids in the schema does not do this: the schema generator folds the
    enum into the integer range it lies in.)"""
    parts = case.path.split("/")
    for name in list(case.path_parameters or {}):
        key = parts[parts.index("{id}") - 1] if name == "id" else name
        if data.draw(st.booleans(), label=f"real {name}"):
            case.path_parameters[name] = data.draw(st.sampled_from(_pool(world, key)))
    if isinstance(case.body, dict):
        for name, value in list(case.body.items()):
            if name not in _KINDS or not data.draw(st.booleans(), label=f"real {name}"):
                continue
            pool = st.sampled_from(_pool(world, name))
            case.body[name] = data.draw(
                st.lists(pool, min_size=1, max_size=3) if isinstance(value, list) else pool
            )


def with_lone_surrogate(body: dict[str, Any], data: st.DataObject) -> bool:
    """A quarter of the time, a lone surrogate (U+D800–U+DFFF) goes into one string of the body, or a key.

    JSON can spell one ("\\ud800") though it is no character; the schema generator never makes one, and
    it used to be a 500 (test_json_input.py). Whether it did."""
    if data.draw(st.integers(0, 3), label="surrogate?") != 0:
        return False
    surrogate = data.draw(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), label="surrogate")
    strings = sorted(k for k, v in body.items() if isinstance(v, str))
    if not strings:
        body[surrogate] = "x"
        return True
    name = data.draw(st.sampled_from(strings), label="field")
    at = data.draw(st.integers(0, len(body[name])), label="at")
    body[name] = body[name][:at] + surrogate + body[name][at:]
    return True


_NESTED = "nested-here-7c1f"  # stands for the nested value in the body's JSON text


def with_deep_nesting(body: dict[str, Any], data: st.DataObject) -> str | None:
    """An eighth of the time, the JSON text of the body with one of its values nested deeper than any
    request of this API: from 33 levels to `[` × 100,000 (deep enough to exhaust the parser, so no JSON
    encoder would make it; closed or not). The schema generator never makes it: 422 `invalid_json`, never a
    5xx (it used to be a 500; test_json_input.py sends it to every route)."""
    if data.draw(st.integers(0, 7), label="nested?") != 0:
        return None
    depth = data.draw(st.one_of(st.integers(33, 2_000), st.just(100_000)), label="depth")
    closed = data.draw(st.booleans(), label="closed")
    body[data.draw(st.sampled_from(sorted(body) or ["nested"]), label="field")] = _NESTED
    nested = "[" * depth + ("0" + "]" * depth if closed else "")
    return json.dumps(body).replace(json.dumps(_NESTED), nested)


def hostile_body(case: schemathesis.Case, data: st.DataObject) -> bytes | None:
    """The JSON text to send in place of the generated body, when one of the edits above was drawn. The
    edits go to a copy and are sent as text: the generated body may be an object schemathesis keeps and
    validates again, and its validator cannot encode a lone surrogate."""
    if not isinstance(case.body, dict):
        return None
    body = copy.deepcopy(case.body)
    edited = with_lone_surrogate(body, data)
    text = with_deep_nesting(body, data)
    if text is None and edited:
        text = json.dumps(body)  # ASCII: a lone surrogate goes as its \u escape
    return None if text is None else text.encode()


class Fuzz:
    def __init__(self, server: LiveServer, world: FuzzWorld) -> None:
        self.server = server
        self.world = world
        self.schema = schemathesis.openapi.from_dict(document())
        self.http = requests.Session()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzz(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[Fuzz]:
    tmp = tmp_path_factory.mktemp("fuzz")
    drop: str | None = None
    if request.param == "sqlite":
        path = tmp / "securemsg.sqlite3"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite://{path}"
    else:
        template = request.getfixturevalue("postgres_template")
        base = need("postgres", postgres_url() if template else None)
        drop = f"securemsg_fz_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_exec(base, f'CREATE DATABASE "{drop}" TEMPLATE "{template}"'))
        url = _with_db(base, drop)
    executor.EXECUTOR_CACHE.clear()  # SQL cached for the other dialect (see tests/conftest.py)
    # The seeded webhook points at loopback (nothing listens there): allowed only with the opt-out.
    config = make_config(url, tmp / "var", webhook_allow_private=True)
    server = LiveServer(config, FakeClock()).start()
    try:
        world = server.run(seed_world(server))
        fuzz = Fuzz(server, world)
        yield fuzz
        fuzz.http.close()
    finally:
        server.stop()
        if drop is not None:
            asyncio.run(_pg_exec(postgres_url() or "", f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)'))


@pytest.mark.parametrize(("method", "path", "caller", "mode"), _operations())
def test_schemathesis(fuzz: Fuzz, method: str, path: str, caller: str, mode: GenerationMode) -> None:
    operation = fuzz.schema[path][method.upper()]
    server, world = fuzz.server, fuzz.world
    server.run(reset_world(world))

    @settings(
        max_examples=MAX_EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def check(case: schemathesis.Case, data: st.DataObject) -> None:
        use_real_ids(case, world, data)
        raw = hostile_body(case, data)
        # The clock moves so that rate-limit windows pass as they would; the caller's token is new for
        # each example, so that one example's sign-out does not decide the next one's answer.
        server.clock.advance(5)
        if method in WRITES:
            server.run(reset_world(world))
        headers = {}
        if caller != "anonymous":
            headers["Authorization"] = f"Bearer {server.run(world.fresh_token(caller))}"
        sent = {} if raw is None else {"data": raw}  # the raw text replaces the body (its Content-Type stays)
        response = case.call(base_url=server.base_url, session=fuzz.http, headers=headers, timeout=30, **sent)
        case.validate_response(response, checks=CHECKS)

    check()
