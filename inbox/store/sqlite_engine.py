"""Tortoise's engine for SQLite here (`inbox.db.tortoise_config`): Tortoise's own client, but with
transactions that take the file's write lock when they begin.

Tortoise begins them DEFERRED: a transaction reads, and asks for the write lock only at its first write.
When another process committed in between (`serve --processes N` on one file, or a command such as
`purge-messages` beside a server), SQLite cannot let that transaction write over what it read, and answers
"database is locked" at once, without waiting in its busy handler: the request answered 503 although the
other writer was long done (tests/scale/test_processes_sqlite.py saw it on reads that write an audit row).
Begun IMMEDIATE, a transaction waits its turn like any writer (bounded by the busy timeout, then 503), and
then reads the newest data. Within one process nothing changes: its one connection ran its transactions one
at a time already. Readers in WAL mode (the raw-SQL reader, a backup) never wait for the write lock.

The methods overridden here are checked by name and signature in `inbox.store._compat.EXPECTED`. This module's
name must keep "sqlite" in it: Tortoise's migration executor picks SQLite's schema editor by the name of the
client class's module.

And a transaction that fails to begin gives its lock back. Tortoise's context takes the client's transaction
lock, then begins; when BEGIN failed (locked past the busy timeout) or the task was cancelled meanwhile (a
request whose client went away, a server stopping), `__aenter__` raised with the lock still held and no
`__aexit__` to release it: every later transaction of the process then waited for ever (a test run's
tear-down hung in the audit sealer's last pass; `tests/inbox/test_transaction_begin.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

from tortoise.backends.base.client import TransactionalDBClient, TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

from inbox.store._compat import transaction_connection


class ImmediateSqliteTransaction(SqliteTransactionWrapper):
    async def begin(self) -> None:
        # As Tortoise's own begin, but IMMEDIATE: the write lock is taken (or waited for) before any read.
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # locked past the busy timeout: `db.unavailable` says 503
            raise TransactionManagementError(exc) from exc


class _Context(SqliteTransactionContext):
    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        try:
            return await _begin_rest(self)
        except BaseException:
            self._trxlock.release()
            raise


async def _begin_rest(context: SqliteTransactionContext) -> TransactionalDBClient:
    """Tortoise's `SqliteTransactionContext.__aenter__` after it has the lock; on failure nothing is left
    set, and a BEGIN that may still run in aiosqlite's thread is rolled back after it."""
    await context.ensure_connection()
    connections = get_connections()
    token = connections.set(context.connection_name, context.connection)
    try:
        await context.connection.begin()
    except BaseException:
        connections.reset(token)
        with contextlib.suppress(Exception):
            # Queued after the BEGIN in the connection's thread: whatever it began ends here. Shielded: a
            # cancelled caller still leaves no transaction open (holding the file's write lock).
            await asyncio.shield(transaction_connection(context.connection).rollback())
        raise
    context.token = token
    return context.connection


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return _Context(ImmediateSqliteTransaction(self), self._lock)


client_class = ImmediateSqliteClient
