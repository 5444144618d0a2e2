"""The one place that reaches into libraries' private names, because no public way does the same job.

Each use below says why there is no public way. `tests/inbox/test_store_compat.py` checks that every name
still exists with the signature we call it with (`EXPECTED`), so an upgrade of Tortoise or aiosqlite that
changes them fails that test by name, loudly, instead of slowing the send path down or breaking it quietly.

What was private and now has a public way is not here: `Tortoise.init(_enable_global_fallback=True)` became
`tortoise.context.set_global_context(ctx)` (inbox.db).
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiosqlite
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionContextPooled
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.models import Model

M = TypeVar("M", bound=Model)
T = TypeVar("T")

# (owner, attribute, the parameters we pass, or None for an attribute that is not called)
EXPECTED: tuple[tuple[Any, str, tuple[str, ...] | None], ...] = (
    (Model, "_init_from_db", ("kwargs",)),
    (aiosqlite.Connection, "_execute", ("self", "fn", "args", "kwargs")),
    (aiosqlite.Connection, "_conn", None),
    # inbox.store.sqlite_engine: Tortoise's SQLite client with transactions that begin IMMEDIATE.
    (SqliteClient, "_in_transaction", ("self",)),
    (SqliteTransactionContext, "__init__", ("self", "connection", "trxlock")),
    (SqliteTransactionWrapper, "__init__", ("self", "connection")),
    (SqliteTransactionWrapper, "begin", ("self",)),
    (SqliteTransactionContext, "ensure_connection", ("self",)),
    (SqliteTransactionContext, "__aenter__", ("self",)),
    (SqliteTransactionContext, "__aexit__", ("self", "exc_type", "exc_val", "exc_tb")),
    # inbox.store.asyncpg_engine: a transaction that fails to begin gives its pooled connection back.
    (AsyncpgDBClient, "_in_transaction", ("self",)),
    (TransactionContextPooled, "__init__", ("self", "client", "pool_init_lock")),
    (TransactionContextPooled, "ensure_connection", ("self",)),
    (TransactionContextPooled, "__aenter__", ("self",)),
    (TransactionContextPooled, "__aexit__", ("self", "exc_type", "exc_val", "exc_tb")),
    (TransactionWrapper, "__init__", ("self", "connection")),
)


def signature_of(owner: Any, name: str) -> tuple[str, ...]:
    """The parameter names of `owner.name` (for the check in the tests)."""
    return tuple(inspect.signature(getattr(owner, name)).parameters)


def model_from_db(model: type[M], values: Mapping[str, Any]) -> M:
    """A model instance from a database row's columns, with Tortoise's own conversions, marked as saved.

    Public alternatives fall short: `Model.construct` skips `to_python_value` (a JSON column would stay
    text) and marks the primary key as not generated; `Model(**values)` validates and marks it unsaved. This
    is what Tortoise's own executor calls for every row it loads."""
    return model._init_from_db(**values)


def sqlite_connection(conn: BaseDBAsyncClient) -> aiosqlite.Connection | None:
    """The aiosqlite connection behind a Tortoise SQLite client, or None (PostgreSQL, or a Tortoise that no
    longer keeps it where it did). Tortoise has no public accessor; `acquire_connection()` hands it out
    under the client's lock, which `run_in_sqlite_thread` callers take themselves."""
    aconn = getattr(conn, "_connection", None)
    return aconn if isinstance(aconn, aiosqlite.Connection) else None


async def run_in_sqlite_thread(aconn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn(db)` in the aiosqlite connection's own thread, with its sqlite3 connection: a whole batch of
    statements in one hop instead of one hop per statement. aiosqlite offers no public way to run a
    function in its thread; every public method is this call with one of sqlite3's methods."""
    result: T = await aconn._execute(lambda: fn(aconn._conn))
    return result


def has_sqlite_thread(aconn: aiosqlite.Connection) -> bool:
    """Whether this aiosqlite still has what `run_in_sqlite_thread` uses (a missing one costs speed, not
    correctness: the units then go statement by statement)."""
    return hasattr(aconn, "_execute") and hasattr(type(aconn), "_conn")


def pool_use(conn: BaseDBAsyncClient) -> tuple[int, int, int] | None:
    """(in use, idle, max) of a Tortoise client: asyncpg's pool, or SQLite's one connection (in use while
    its lock is held). Tortoise exposes neither its pool nor its SQLite lock; asyncpg's pool has public
    `get_size`, `get_idle_size` and `get_max_size`."""
    pool = getattr(conn, "_pool", None)
    if pool is not None and hasattr(pool, "get_size"):
        size, idle = pool.get_size(), pool.get_idle_size()
        return size - idle, idle, pool.get_max_size()
    lock = getattr(conn, "_lock", None)
    if isinstance(lock, asyncio.Lock):  # SQLite: one connection, opened at the first statement
        if getattr(conn, "_connection", None) is None:
            return 0, 0, 1
        busy = int(lock.locked())
        return busy, 1 - busy, 1
    return None


def transaction_pool(wrapper: Any) -> Any:
    """The asyncpg pool behind a Tortoise transaction wrapper (`inbox.store.asyncpg_engine`): Tortoise keeps
    it on the wrapper's parent client and offers no accessor."""
    return wrapper._parent._pool


def transaction_connection(wrapper: Any) -> Any:
    """The connection a Tortoise transaction wrapper holds (asyncpg's or aiosqlite's); no public accessor."""
    return wrapper._connection


def hold_connection(wrapper: Any, connection: Any) -> None:
    """Give a Tortoise transaction wrapper the pooled connection it runs on (as Tortoise's context does)."""
    wrapper._connection = connection
