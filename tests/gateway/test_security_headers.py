"""Security headers on every answer (aiohttp's own 404, 405 and 413 included), HSTS under https, and
aiohttp's own log lines without the paths and tokens of the requests they are about."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.config import Config
from gateway.validation import MAX_BODY_BYTES
from tests.conftest import make_config

BASE = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# (method, path, body, what it is) — each answered by a different part of the server.
REQUESTS = [
    ("GET", "/portal/sign-in", None, 200),  # a page
    ("GET", "/api/v1/me", None, 401),  # the API, refused
    ("GET", "/no/such/page", None, 404),  # aiohttp's router, not the API
    ("GET", "/api/v1/no-such-thing", None, 404),
    ("DELETE", "/portal/sign-in", None, 405),  # aiohttp's router again
    ("PATCH", "/api/v1/auth/login", None, 405),
    ("POST", "/portal/sign-in", b"email=" + b"a" * (MAX_BODY_BYTES + 10), 413),  # aiohttp's body limit
    ("GET", "/static/app.css", None, 200),
    ("GET", "/healthz", None, 200),
    ("GET", "/api/v1/openapi.json", None, 200),
]


@pytest.fixture
def config(sqlite_url: str, tmp_path: Path) -> Config:
    return make_config(sqlite_url, tmp_path / "var")


async def _answers(client: Any) -> list[tuple[str, Any]]:
    out = []
    for method, path, body, expected in REQUESTS:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        resp = await client.request(method, path, data=body, headers=headers, allow_redirects=False)
        assert resp.status == expected, (method, path, resp.status)
        out.append((f"{method} {path} {resp.status}", resp.headers))
    return out


async def test_every_answer_carries_the_security_headers(client) -> None:
    for label, headers in await _answers(client):
        for name, value in BASE.items():
            assert headers.get(name) == value, (label, name, headers.get(name))
        csp = headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, label
        assert "Strict-Transport-Security" not in headers, label  # plain http: HSTS means nothing


async def test_under_https_every_answer_also_carries_hsts(aiohttp_client, config, clock) -> None:
    client = await aiohttp_client(
        create_app(config.with_overrides(public_url="https://msg.example.org"), clock=clock)
    )
    for label, headers in await _answers(client):
        assert headers.get("Strict-Transport-Security", "").startswith("max-age=31536000"), label
        assert headers.get("X-Frame-Options") == "DENY", label


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name} {self.format(record)}")


@pytest.fixture
def logs() -> Iterator[Capture]:
    capture, root = Capture(), logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()


TOKEN = "Lk3vQ9pXz7Rw2mN5bT8yHc4jD6fG1sAe"


async def test_aiohttps_own_log_lines_carry_no_path_or_token(client, logs) -> None:
    # An over-long request line: aiohttp logs its first bytes, a link token among them, at ERROR.
    status = await _raw(client.port, f"GET /portal/m/{TOKEN}".encode() + b"x" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert status.startswith(b"HTTP/1.0 400") or status.startswith(b"HTTP/1.1 400"), status
    # An over-long header line: its value (a bearer token, a cookie) would be logged the same way.
    status = await _raw(
        client.port,
        b"GET /api/v1/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + TOKEN.encode() * 300 + b"\r\n\r\n",
    )
    assert b" 400" in status, status
    await asyncio.sleep(0.1)
    from_aiohttp = [line for line in logs.lines if " aiohttp." in line]
    assert any(line.startswith("ERROR aiohttp.server") for line in from_aiohttp), logs.lines
    assert not [line for line in logs.lines if TOKEN in line or "/portal/m/" in line], from_aiohttp
