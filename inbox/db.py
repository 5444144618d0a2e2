"""Database set-up: the Tortoise configuration, migrations, start/stop of the connection pool, and the
unit of work (`transaction`).

The one `inbox` module outside `inbox.store` that imports Tortoise: the gateway starts, stops and migrates
the database and says which domain calls commit together through here, never through Tortoise itself
(docs/architecture.md; tests/test_layers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import set_global_context
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api import migrate as _migrate
from tortoise.transactions import in_transaction

from inbox.store import _compat, sql

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


# "The database is not there right now": the server is down or restarting, a connection was cut or could not
# be made, a call took longer than the timeout, or SQLite's file is locked by another writer. Requests that
# meet one answer 503 with Retry-After (gateway.middleware), and a group commit fails its whole batch (every
# unit would meet it alike); the connection pool opens new connections by itself once the database is back.
# Any other database error (a constraint, bad SQL, a value the column refuses) is a fault of one request: a
# 500 with its traceback in the log, failing only its own unit. `unavailable` is the one place that decides.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    DBConnectionError,
    asyncpg.PostgresConnectionError,  # class 08: the connection was lost or could not be made
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up; statement timeout
    asyncpg.exceptions.TooManyConnectionsError,  # 53300: the server's connection slots are all taken
    ConnectionError,  # refused, reset, aborted, a broken pipe
    TimeoutError,  # a call over SECUREMSG_DATABASE_TIMEOUT_S
    socket.gaierror,  # the database's host name does not resolve (DNS down)
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


# Socket errors that are not ConnectionError subclasses but still mean "cannot reach the server".
_NETWORK_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps: Tortoise wraps drivers' errors) means the database cannot be
    reached right now, rather than that this one request did something the database refused."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, UNAVAILABLE):
            return True
        if isinstance(err, sqlite3.OperationalError) and _sqlite_locked(err):
            return True
        if type(err) is OSError and err.errno in _NETWORK_ERRNOS:
            return True
        # asyncpg, asked to use (or roll back on) a connection the server has ended, or left mid-operation
        # by a connection that went away under a statement (a fast restart).
        if _lost_connection(err):
            return True
        # 55000 "database ... is not currently accepting connections": an operator turned the database's
        # connections off, or it is being dropped or restored. (Other 55000s are faults of a statement.)
        if isinstance(
            err, asyncpg.exceptions.ObjectNotInPrerequisiteStateError
        ) and "accepting connections" in str(err):
            return True
        # Tortoise raises OperationalError(driver_error), sometimes without `from`. (Not __context__: an
        # error raised while handling a lost connection is an error of its own.)
        todo += [err.__cause__, *(a for a in err.args if isinstance(a, BaseException))]
    return False


def _sqlite_locked(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (or an extended code of theirs): another writer holds the file."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _lost_connection(err: BaseException) -> bool:
    if not isinstance(err, asyncpg.InternalClientError | asyncpg.InterfaceError):
        return False
    if isinstance(err, asyncpg.exceptions.DataError | asyncpg.exceptions.ClientConfigurationError):
        return False
    text = str(err)
    return any(words in text for words in _LOST_CONNECTION_WORDS)


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
    if url.startswith("sqlite://"):
        # Tortoise's SQLite client, its transactions begun IMMEDIATE (inbox.store.sqlite_engine says why).
        connection = expand_db_url(url)
        connection["engine"] = "inbox.store.sqlite_engine"
    if url.startswith(("postgres://", "asyncpg://")):
        connection = expand_db_url(url)
        # Tortoise's asyncpg client, whose transactions give their connection back when they fail to begin
        # (inbox.store.asyncpg_engine says why).
        connection["engine"] = "inbox.store.asyncpg_engine"
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


_users = 0  # apps (or commands) using the connections; tests run two apps in one process
_connected_to: str | None = None


async def connect(database_url: str, *, timeout_s: float | None = None) -> None:
    """Open the process's connections, or share them when they are open to this database already (a second
    app in one process, as tests make); `disconnect` closes them when the last user is done."""
    global _users, _connected_to
    if _users and _connected_to == database_url:
        _users += 1
        return
    if _users:  # open to another database: that user's connections go
        _users = 1
        await disconnect()
    keep_values_out_of_logs()
    _ensure_sqlite_dir(database_url)
    # The global fallback lets aiohttp's request tasks, which do not inherit the start-up task's context,
    # see the connections opened here (`set_global_context` is the public way to what
    # `Tortoise.init(_enable_global_fallback=True)` does; closing the connections clears it again).
    set_global_context(await Tortoise.init(config=tortoise_config(database_url, timeout_s=timeout_s)))
    _users, _connected_to = 1, database_url
    if dialect() == "sqlite":
        # Open SQLite's connection now rather than in whichever query comes first: aiosqlite opens it in a
        # thread of its own, and a first query cancelled meanwhile (a background loop stopped by a start
        # that fails, or by a shutdown) strands that thread for good, with the file open, the client
        # unusable and the process unable to exit (tests/inbox/test_db_connect.py). PostgreSQL's pool
        # stays lazy: a server that starts while its database is down answers 503 until it is back.
        await Tortoise.get_connection("default").execute_query("SELECT 1")


async def disconnect() -> None:
    global _users, _connected_to
    if _users > 1:
        _users -= 1
        return
    _users, _connected_to = 0, None
    sql.close_readers()
    await Tortoise.close_connections()


def transaction() -> contextlib.AbstractAsyncContextManager[BaseDBAsyncClient]:
    """`async with db.transaction():` the domain calls inside commit together, or none of them does (a
    change and its audit row, for instance). Inside another transaction, it joins that one."""
    return in_transaction()


async def ready(timeout_s: float) -> bool:
    """Whether the database answers a query within `timeout_s` (readiness: `/readyz`)."""
    try:
        conn = Tortoise.get_connection("default")
        async with asyncio.timeout(timeout_s):
            await conn.execute_query("SELECT 1")
        return True
    except Exception:
        return False


def pool_use() -> tuple[int, int, int] | None:
    """(in use, idle, max) of the default connection: asyncpg's pool, or SQLite's one connection (in use
    while its lock is held); None when there is none (the metrics' gauges)."""
    try:
        conn = Tortoise.get_connection("default")
    except Exception:
        return None
    return _compat.pool_use(conn)


def connect_args(url: str) -> dict[str, Any]:
    """asyncpg.connect's arguments for a PostgreSQL URL (a connection of its own: LISTEN/NOTIFY)."""
    credentials = expand_db_url(url)["credentials"]
    return {
        key: credentials[key]
        for key in ("host", "port", "user", "password", "database", "ssl")
        if credentials.get(key) is not None
    }


def dialect() -> str:
    return Tortoise.get_connection("default").capabilities.dialect
