"""A transaction that fails to begin leaves nothing held (`inbox.store.sqlite_engine`,
`inbox.store.asyncpg_engine`).

Tortoise's transaction context takes SQLite's transaction lock (or one of PostgreSQL's pooled connections) and
then sends BEGIN; when that BEGIN failed or its task was cancelled meanwhile (a request whose client went away,
a server stopping), nothing gave the lock or the connection back. On SQLite every later transaction of the
process then waited for ever: a full test run hung in an app's tear-down, in the audit sealer's last pass,
waiting for the lock (tests/conftest.py's hang guard named it). On PostgreSQL each one lost a connection of the
pool for good, and after `maxsize` of them the same."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest

from inbox import db
from inbox.models import Practice
from inbox.store import sql
from inbox.store._compat import pool_use

POOL_MAX = 10  # inbox.db: maxsize=10


async def cancel_while_beginning(steps: int) -> None:
    """Enter a transaction and cancel the task `steps` turns of the loop later: on SQLite one turn finds it
    holding the lock and waiting for BEGIN; on PostgreSQL, where taking a pooled connection takes turns too,
    some number of turns does."""

    async def enter() -> None:
        async with db.transaction():
            await asyncio.sleep(10)  # began: the cancel ends the transaction normally (rolled back)

    task = asyncio.create_task(enter())
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def a_transaction_works() -> None:
    try:
        async with asyncio.timeout(10), db.transaction():
            await Practice.all().count()
    except TimeoutError:
        pytest.fail("a new transaction waited for ever: a cancelled BEGIN kept the lock or the connection")


async def test_a_transaction_cancelled_as_it_begins_holds_nothing(db_url: str) -> None:
    await db.connect(db_url, timeout_s=5)
    try:
        await a_transaction_works()  # the pool is open (PostgreSQL opens it at the first statement)
        for steps in range(1, 4 * POOL_MAX):  # more than the pool holds, cancelled at every turn of the way
            await cancel_while_beginning(steps)
        use = pool_use(sql.client())
        assert use is not None and use[0] == 0, f"(in use, idle, max) = {use}: a cancelled BEGIN kept one"
        await a_transaction_works()
        assert await Practice.all().count() == 0  # and nothing was left open around later statements
    finally:
        await db.disconnect()


async def test_sqlite_a_begin_refused_as_locked_holds_nothing(sqlite_url: str) -> None:
    """Another process holds the write lock past the busy timeout: the BEGIN IMMEDIATE fails (503 for the
    request), and once the other lets go, transactions work again."""
    await db.connect(sqlite_url, timeout_s=5)
    path = sql.sqlite_file(sql.client())
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        conn = sql.client()
        with pytest.raises(Exception) as refused:
            async with asyncio.timeout(30), conn._in_transaction():
                pass
        assert db.unavailable(refused.value), refused.value
        await asyncio.to_thread(other.execute, "ROLLBACK")
        await a_transaction_works()
    finally:
        other.close()
        await db.disconnect()
