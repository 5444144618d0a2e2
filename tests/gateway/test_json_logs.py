"""Logs as one JSON object a line (SECUREMSG_LOG_FORMAT=json) with request ids (docs/operations.md).

A real `securemsg serve` process logs in JSON: every line it writes parses, and each request's lines carry
the request id that came back in its `X-Request-Id` (the caller's own when sane, else a new one). In
process: a line logged while a request is served carries its id, and a traceback leaves the exception's
message out. A bad SECUREMSG_LOG_FORMAT stops the start with one line and exit status 2.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.config import Config
from gateway.logs import JsonFormatter, request_id_from
from tests.conftest import make_config
from tests.faults.procs import ROOT, Server, free_port, server_env

GENERATED = re.compile(r"[0-9a-f]{32}")
CANARY = "PHI-canary-7c1e: sertraline 50mg"


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    parsed = []
    for line in lines:
        entry = json.loads(line)  # every line, not only most: a plain line here is a failure
        assert isinstance(entry, dict)
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        parsed.append(entry)
    return parsed


async def test_a_served_process_logs_json_lines_carrying_each_requests_id(
    db_url: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    env = server_env(
        db_url,
        tmp_path / "var",
        SECUREMSG_LOG_FORMAT="json",
        SECUREMSG_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
    )
    server = Server(env, tmp_path / "logs")
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/healthz", headers={"X-Request-Id": "lb-7f3a.1"}) as resp:
                assert resp.status == 200 and resp.headers["X-Request-Id"] == "lb-7f3a.1"
            async with http.get(server.url + "/api/v1/me") as resp:
                assert resp.status == 401
                made = resp.headers["X-Request-Id"]
                assert GENERATED.fullmatch(made)
            # An id that is not sane (spaces, too long) is not taken: a new one is made instead.
            for insane in ("two words", "x" * 200, "<script>"):
                async with http.get(server.url + "/api/v1/me", headers={"X-Request-Id": insane}) as resp:
                    assert resp.status == 401 and GENERATED.fullmatch(resp.headers["X-Request-Id"])
            async with http.get(server.url + "/metrics") as resp:
                assert resp.status == 404  # never on the public listener
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
                assert resp.status == 200
                scraped = await resp.text()
    finally:
        await server.stop()
    assert 'securemsg_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in scraped
    assert 'route="/api/v1/me",status="401"} 4.0' in scraped

    lines = json_lines(server.log_text())
    mine = [e for e in lines if e.get("request_id") == "lb-7f3a.1"]
    assert mine and mine[-1]["logger"] == "securemsg.access"
    assert (mine[-1]["method"], mine[-1]["route"], mine[-1]["status"]) == ("GET", "/healthz", 200)
    assert isinstance(mine[-1]["duration_ms"], float | int)
    made_lines = [e for e in lines if e.get("request_id") == made]
    assert [(e["route"], e["status"]) for e in made_lines] == [("/api/v1/me", 401)]
    text = server.log_text()
    assert "two words" not in text and "<script>" not in text and "x" * 200 not in text
    # Lines made outside any request (the start, the stop) carry no request id.
    assert any("request_id" not in e for e in lines)


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    return make_config(db_url, tmp_path / "var", log_format="json")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_line_logged_while_serving_carries_the_request_id(
    client, captured: io.StringIO, db_url: str
) -> None:
    """PostgreSQL stops taking this database's connections: a request that needs it fails, and the line
    the errors middleware logs while serving it carries the request's id, as does its access line."""
    base, _, name = db_url.rpartition("/")
    admin = await asyncpg.connect(base.replace("postgres://", "postgresql://", 1) + "/postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        resp = await client.get(
            "/api/v1/me", headers={"Authorization": "Bearer " + "t" * 43, "X-Request-Id": "trace-42"}
        )
        assert resp.status >= 500 and resp.headers["X-Request-Id"] == "trace-42"
        failed = resp.status
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    ok = await client.get("/healthz")
    other = ok.headers["X-Request-Id"]
    assert GENERATED.fullmatch(other)

    lines = json_lines(captured.getvalue())
    served = [e for e in lines if e.get("request_id") == "trace-42"]
    [fault] = [e for e in served if e["logger"] == "gateway.middleware"]
    assert fault["level"] in ("WARNING", "ERROR") and "GET /api/v1/me" in fault["message"]  # 503 or 500
    access = [(e["route"], e["status"]) for e in served if e["logger"] == "securemsg.access"]
    assert access == [("/api/v1/me", failed)]
    access = [e for e in lines if e["logger"] == "securemsg.access" and e.get("request_id") == other]
    assert [(e["route"], e["status"]) for e in access] == [("/healthz", 200)]
    assert "t" * 43 not in captured.getvalue()


def test_a_json_line_keeps_the_traceback_but_not_the_exceptions_message() -> None:
    try:
        raise RuntimeError(CANARY)  # a message may quote data: it must not reach the log
    except RuntimeError:
        record = logging.getLogger("securemsg.test").makeRecord(
            "securemsg.test", logging.ERROR, __file__, 1, "it failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "it failed" and entry["level"] == "ERROR"
    assert "RuntimeError (message left out of the log)" in entry["traceback"]
    assert "test_json_logs.py" in entry["traceback"]  # where it failed is kept
    assert CANARY not in line


def test_request_ids_from_callers_are_taken_only_when_sane() -> None:
    for sane in ("0f8c2f1d9b6e4a7c8d3e2f1a0b9c8d7e", "Root=1-5759e988-bd862e3fe1be46a994272793", "req:7.a_b"):
        assert request_id_from(sane) == sane
    for insane in (None, "", "a b", "é", "x" * 129, "-leading", "a\tb", "id;drop"):
        made = request_id_from(insane)
        assert made != insane and GENERATED.fullmatch(made)


def run_cli(tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREMSG_")}
    env.update(env_extra, SECUREMSG_VAR_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "gateway", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECUREMSG_LOG_FORMAT", "xml"),
        ("SECUREMSG_METRICS_LISTEN", "everywhere"),
        ("SECUREMSG_METRICS_LISTEN", "127.0.0.1:70000"),
    ],
)
def test_a_bad_log_or_metrics_setting_stops_with_one_line_and_exit_2(tmp_path: Path, name: str, value: str):
    done = run_cli(tmp_path, **{name: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"securemsg: {name}"), lines


def test_json_is_chosen_case_insensitively_and_plain_stays_the_default(tmp_path: Path) -> None:
    from gateway.config import load_config

    assert load_config({"SECUREMSG_VAR_DIR": str(tmp_path)}).log_format == "plain"
    assert (
        load_config({"SECUREMSG_VAR_DIR": str(tmp_path), "SECUREMSG_LOG_FORMAT": " JSON "}).log_format
        == "json"
    )
