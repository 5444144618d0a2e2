"""Which errors mean "the database is not there right now" (503 with Retry-After) and which are faults
(500): asyncpg's states of a connection cut under a statement, as a fast PostgreSQL restart leaves them
(tests/faults/test_postgres_restart.py drives the real thing)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from tortoise.exceptions import OperationalError

from gateway.middleware import errors
from inbox.db import unavailable

OUTAGES = [
    asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    asyncpg.exceptions.InternalClientError('cannot switch to state 3; protocol is in the "failed" state'),
    asyncpg.exceptions.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
    ConnectionResetError(104, "Connection reset by peer"),
]
FAULTS = [
    asyncpg.exceptions.DataError("invalid input for query argument $1: 'x' (an integer is required)"),
    asyncpg.exceptions.InternalClientError("unexpected codec state"),
    RuntimeError("a bug"),
    KeyError("missing"),
]


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
def test_a_lost_connection_is_unavailability(exc: BaseException) -> None:
    assert unavailable(exc)
    try:  # Tortoise wraps some driver errors in its own: the cause decides
        raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert unavailable(wrapped)


@pytest.mark.parametrize("exc", FAULTS, ids=lambda e: type(e).__name__)
def test_a_fault_is_not_unavailability(exc: BaseException) -> None:
    assert not unavailable(exc)


def _sqlite_locked(path: Path) -> sqlite3.OperationalError:
    """A real "database is locked" from SQLite (its error code says so), as Tortoise meets it."""
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        try:
            other.execute("INSERT INTO t VALUES (1)")
        except sqlite3.OperationalError as exc:
            return exc
        raise AssertionError("the second writer was not refused")
    finally:
        holder.close()
        other.close()


async def test_the_api_answers_503_for_an_outage_and_500_for_a_fault(aiohttp_client, tmp_path: Path) -> None:
    raised: list[BaseException] = []

    async def handler(request: web.Request) -> web.Response:
        raise raised[-1]

    app = web.Application(middlewares=[errors])
    app.router.add_get("/api/v1/probe", handler)
    client = await aiohttp_client(app)
    for exc in [*OUTAGES, OperationalError(_sqlite_locked(tmp_path / "db.sqlite3"))]:
        raised.append(exc)
        resp = await client.get("/api/v1/probe")
        body = await resp.json()
        assert resp.status == 503 and body["error"]["code"] == "unavailable", exc
        assert resp.headers["Retry-After"].isdigit()
    for exc in FAULTS:
        raised.append(exc)
        resp = await client.get("/api/v1/probe")
        assert resp.status == 500 and (await resp.json())["error"]["code"] == "internal_error", exc
