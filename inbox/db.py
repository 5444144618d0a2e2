"""Database set-up: the Tortoise configuration, migrations, and start/stop of the connection pool."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError, OperationalError
from tortoise.migrations.api import migrate as _migrate

from inbox import rawsql

MODELS_MODULE = "inbox.models"
MIGRATIONS_MODULE = "inbox.migrations"


# The database drivers' DEBUG records carry every statement's values: CSRF tokens, TOTP and webhook secrets,
# device tokens, names and addresses. Whatever level a process logs at, those records are dropped: nothing
# secret is ever logged (docs/security.md).
SQL_LOGGERS = ("tortoise.db_client", "aiosqlite")


class _NoDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


_NO_DEBUG = _NoDebug()


def keep_values_out_of_logs() -> None:
    for name in SQL_LOGGERS:
        logger = logging.getLogger(name)
        if _NO_DEBUG not in logger.filters:
            logger.addFilter(_NO_DEBUG)


def _ensure_sqlite_dir(url: str) -> None:
    """The SQLite file's directory (0700 when made here), and the file itself, created empty and readable by
    its owner only before SQLite opens it: SQLite gives the -wal and -shm files it makes later the same
    mode as the database, so none of the three is ever world-readable, whatever the process umask."""
    if url.startswith("sqlite://") and ":memory:" not in url:
        path = Path(url[len("sqlite://") :].split("?", 1)[0])
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass


# "The database is not there right now": the server is down or restarting, a connection was cut, or a
# call took longer than the timeout. Requests that meet one answer 503 with Retry-After (gateway.middleware);
# the connection pool opens new connections by itself once the database is back.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    DBConnectionError,
    OperationalError,  # SQLite: "database is locked"
    asyncpg.PostgresConnectionError,  # class 08: the connection was lost or could not be made
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    ConnectionError,
    OSError,  # connection refused; TimeoutError (a call over the timeout) is an OSError too
)

# asyncpg's own words for a connection that went away under a statement (a fast restart closes every
# connection while statements are on the wire): its protocol is left mid-operation, and the pool replaces
# the connection. Other InterfaceErrors (DataError: a value of the wrong type) are faults, not outages.
_LOST_CONNECTION_WORDS = (
    "cannot switch to state",
    "another operation is in progress",
    "another operation is cancelling",
    "connection is closed",
    "connection was closed",
    "underlying connection is closed",
    "pool is closing",
    "pool is closed",
)


def is_unavailable(exc: BaseException) -> bool:
    """Is this "the database is not there right now" (503 with Retry-After, and the dispatcher tries the
    write again), rather than a fault (500)? Looks through the exception's causes, since Tortoise wraps
    some driver errors in its own."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, UNAVAILABLE):
            return True
        if isinstance(seen, asyncpg.InternalClientError | asyncpg.InterfaceError) and not isinstance(
            seen, asyncpg.exceptions.DataError | asyncpg.exceptions.ClientConfigurationError
        ):
            text = str(seen)
            if any(words in text for words in _LOST_CONNECTION_WORDS):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _release_reset(conn: asyncpg.Connection) -> None:
    """What a pooled PostgreSQL connection runs when it goes back to the pool: nothing more than asyncpg's
    own clean-up, which has already rolled back a transaction left open (a cancelled request).

    asyncpg's default also sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on
    every release: one more round trip to the server for every query Tortoise runs outside a transaction
    (three on each send). This code keeps no session state for that to clear (no SET, LISTEN, advisory locks
    or cursors: `tests/test_db.py` checks), so the round trip bought nothing."""


def tortoise_config(database_url: str, *, timeout_s: float | None = None) -> dict[str, Any]:
    """`timeout_s` (PostgreSQL): how long connecting, and then any one statement, may take before it fails
    (a database that stopped answering must not hold requests forever). Unset for migrations, which may
    rightly run long."""
    url = database_url
    if url.startswith("postgres://") and "maxsize" not in url:
        url += ("&" if "?" in url else "?") + "minsize=1&maxsize=10"
    connection: str | dict[str, Any] = url
    if url.startswith(("postgres://", "asyncpg://")):
        connection = expand_db_url(url)
        connection["credentials"]["reset"] = _release_reset
        if timeout_s is not None:
            connection["credentials"] |= {"timeout": timeout_s, "command_timeout": timeout_s}
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(database_url: str) -> None:
    """Bring the schema up to date; idempotent."""
    keep_values_out_of_logs()
    _ensure_sqlite_dir(database_url)
    try:
        await _migrate(config=tortoise_config(database_url))
    finally:
        await Tortoise.close_connections()


async def connect(database_url: str, *, timeout_s: float | None = None) -> None:
    keep_values_out_of_logs()
    _ensure_sqlite_dir(database_url)
    # The global fallback lets aiohttp's request tasks, which do not inherit the start-up task's context,
    # see the connections opened here.
    await Tortoise.init(
        config=tortoise_config(database_url, timeout_s=timeout_s), _enable_global_fallback=True
    )


async def disconnect() -> None:
    rawsql.close_readers()
    await Tortoise.close_connections()


def dialect() -> str:
    return Tortoise.get_connection("default").capabilities.dialect
