"""Which database errors are "briefly unavailable" (503 with Retry-After) and which are faults (500 with a
traceback in the log, and nothing of the request's data in it): inbox.db.unavailable decides, on SQLite and
PostgreSQL, for the API and the group commit alike."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from gateway.config import Config
from gateway.logsafe import traceback_without_values
from inbox.db import unavailable
from tests.conftest import make_config

CANARY = "CANARY-7f3a nobody's lab results"


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    # A statement may take a second before the request answers 503 (PostgreSQL).
    return make_config(db_url, tmp_path / "var", database_timeout_s=1)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)


@pytest.fixture
def logs() -> Iterator[Capture]:
    capture = Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)


async def _sql(db_url: str, statement: str) -> None:
    if db_url.startswith("sqlite://"):
        with sqlite3.connect(db_url.removeprefix("sqlite://")) as conn:
            conn.execute(statement)
        return
    conn = await asyncpg.connect(db_url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _conversation(api, cast) -> int:
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")], "body": "hi"}, token=cast.tok("clinician")
    )
    assert status == 201, conv
    return int(conv["id"])


async def test_a_database_error_that_is_not_unavailability_is_a_500_with_a_traceback_and_no_data(
    api, cast, db_url, logs
):
    conv = await _conversation(api, cast)
    # A table the send writes to is gone (a botched migration, say): that is no outage to wait out.
    await _sql(db_url, "ALTER TABLE outbox_job RENAME TO outbox_job_elsewhere")
    resp = await api.client.post(
        f"/api/v1/conversations/{conv}/messages",
        json={"body": CANARY},
        headers={"Authorization": f"Bearer {cast.tok('clinician')}"},
    )
    body = await resp.json()
    assert resp.status == 500, body
    assert body["error"]["code"] == "internal_error" and "Retry-After" not in resp.headers
    [record] = [r for r in logs.records if r.getMessage().startswith("unhandled error on POST")]
    assert record.levelno == logging.ERROR
    logged = record.getMessage()
    assert "/api/v1/conversations/{id}/messages" in logged and "Traceback (most recent call last)" in logged
    assert "(message left out of the log)" in logged
    assert CANARY not in logs.text() and cast.tok("clinician") not in logs.text()
    await _sql(db_url, "ALTER TABLE outbox_job_elsewhere RENAME TO outbox_job")
    status, _ = await api.post(
        f"/conversations/{conv}/messages", {"body": "again"}, token=cast.tok("clinician")
    )
    assert status == 201


async def test_a_locked_or_timed_out_database_is_a_503_with_retry_after(api, cast, db_url, logs):
    conv = await _conversation(api, cast)
    if db_url.startswith("sqlite://"):  # another writer holds the file for longer than SQLite waits (5 s)
        holder = sqlite3.connect(db_url.removeprefix("sqlite://"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        release = holder.execute
    else:  # a lock the send waits on for longer than SECUREMSG_DATABASE_TIMEOUT_S (1 s here)
        pg = await asyncpg.connect(db_url.replace("postgres://", "postgresql://", 1))
        await pg.execute("BEGIN; LOCK TABLE message IN ACCESS EXCLUSIVE MODE")
    try:
        resp = await asyncio.wait_for(
            api.client.post(
                f"/api/v1/conversations/{conv}/messages",
                json={"body": CANARY},
                headers={"Authorization": f"Bearer {cast.tok('clinician')}"},
            ),
            timeout=30,
        )
        body = await resp.json()
    finally:
        if db_url.startswith("sqlite://"):
            release("ROLLBACK")
            holder.close()
        else:
            await pg.execute("ROLLBACK")
            await pg.close()
    assert resp.status == 503, body
    assert body["error"]["code"] == "unavailable" and resp.headers["Retry-After"] == "2"
    assert not any(r.levelno >= logging.ERROR for r in logs.records), logs.text()
    status, _ = await api.post(
        f"/conversations/{conv}/messages", {"body": "again"}, token=cast.tok("clinician")
    )
    assert status == 201


def test_unavailability_is_a_lost_connection_a_timeout_or_a_lock_and_nothing_else() -> None:
    from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    assert unavailable(OperationalError(locked))
    assert unavailable(DBConnectionError("no server"))
    assert unavailable(TimeoutError())
    assert unavailable(ConnectionResetError())
    assert unavailable(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    assert unavailable(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    assert unavailable(asyncpg.InterfaceError("cannot call Transaction.rollback(): connection is closed"))
    no_table = sqlite3.OperationalError("no such table: x")
    no_table.sqlite_errorcode = sqlite3.SQLITE_ERROR  # type: ignore[attr-defined]
    assert not unavailable(OperationalError(no_table))
    assert not unavailable(OperationalError(asyncpg.exceptions.UndefinedTableError("relation x")))
    assert not unavailable(asyncpg.exceptions.DiskFullError("no space"))
    assert not unavailable(IntegrityError("duplicate"))
    assert not unavailable(FileNotFoundError(2, "templates/x.html"))
    assert not unavailable(PermissionError(13, "denied"))
    assert not unavailable(ValueError("x"))


def test_a_logged_traceback_keeps_the_frames_and_leaves_out_every_message() -> None:
    def fails() -> None:
        try:
            raise KeyError(CANARY)
        except KeyError as exc:
            raise ValueError(f"bad value {CANARY!r}") from exc

    try:
        fails()
    except ValueError as exc:
        text = traceback_without_values(exc)
    assert CANARY not in text
    assert "builtins.KeyError (message left out of the log)" in text
    assert "builtins.ValueError (message left out of the log)" in text
    assert "in fails\n    raise KeyError" in text


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_postgres_database_that_accepts_no_connections_is_a_503_not_a_500(api, cast, db_url, logs):
    """SQLSTATE 55000 "database ... is not currently accepting connections" (an operator's ALTER DATABASE
    ... ALLOW_CONNECTIONS false, or one being dropped or restored): the server is there, the database is
    not, for now."""
    conv = await _conversation(api, cast)
    base, _, name = db_url.rpartition("/")
    admin = await asyncpg.connect(f"{base}/postgres".replace("postgres://", "postgresql://", 1))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        with pytest.raises(asyncpg.PostgresError) as refused:
            await asyncpg.connect(db_url.replace("postgres://", "postgresql://", 1))
        assert refused.value.sqlstate == "55000" and unavailable(refused.value)
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        statuses = []
        for _ in range(3):  # the first may meet its cut connection, the next ones the refusal to reconnect
            resp = await api.client.post(
                f"/api/v1/conversations/{conv}/messages",
                json={"body": CANARY},
                headers={"Authorization": f"Bearer {cast.tok('clinician')}"},
            )
            body = await resp.json()
            statuses.append((resp.status, body["error"]["code"], resp.headers.get("Retry-After")))
        assert statuses == [(503, "unavailable", "2")] * 3
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    status, _ = await api.post(
        f"/conversations/{conv}/messages", {"body": "again"}, token=cast.tok("clinician")
    )
    assert status == 201
