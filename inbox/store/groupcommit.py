"""Group commit: concurrent write units share transactions, written by one writer task at a time.

One commit per message cannot go faster than the disk syncs (about 1,100–1,600 commits/s with SQLite here),
so concurrent sends are batched: each caller hands its unit (see `inbox.store.sql`) to `GroupCommit.run` and
waits; a writer task takes everything waiting, runs it in one transaction and commits. What a caller is told
does not change:

- `run` returns only after the transaction holding the unit has committed, so a 201 still means the message
  is durable. An idle server runs a lone unit at once, in a batch of one: nothing waits for company.
- An error in one unit does not fail the others: the batch is rolled back, the failing unit gets its error,
  and the rest run again, in a new transaction, without it. Only an error that is not the unit's own (the
  database is locked, gone or timed out: `inbox.db.unavailable`) fails the whole batch, each caller with
  that error, just as it would have failed each of their own transactions.
- A unit whose caller went away (cancelled) before its batch started is dropped, never half-written.

On SQLite the whole batch runs in aiosqlite's thread in one hop (BEGIN IMMEDIATE … COMMIT), under Tortoise's
connection lock; on PostgreSQL it runs through `in_transaction()` on one pooled connection. Inside a
transaction the caller already holds, a unit simply runs in it (it commits with the caller's).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from typing import Any

from tortoise.backends.base.client import TransactionalDBClient
from tortoise.transactions import in_transaction

from inbox.db import unavailable
from inbox.store import _compat, sql, writerlock
from inbox.store.sql import Unit

MAX_BATCH = 64

Outcome = tuple[bool, Any]  # (True, result) or (False, exception)


class _Retry(Exception):
    """A unit failed on its own account: roll back and run the batch again without it."""


def unit_specific(exc: BaseException) -> bool:
    """Errors that belong to one unit (a duplicate client_msg_id, a refusal, a value the database refuses,
    a bug met by one unit's data) rather than to the database as a whole (locked, unreachable, timed out:
    `inbox.db.unavailable`), which would fail every unit alike."""
    return isinstance(exc, Exception) and not unavailable(exc)


class GroupCommit:
    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._pending: list[tuple[Unit[Any], asyncio.Future[Any], bool]] = []
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Counters, for benchmarks and tests: how many transactions, and how many units they held.
        self.batches = 0
        self.units = 0
        # Told each transaction's unit count (the gateway's metrics histogram); a plain call, no lock.
        self.on_batch: Callable[[int], None] | None = None

    async def run(self, unit: Unit[Any], *, one_statement: bool = False) -> Any:
        """Run `unit` in a shared transaction; returns its result once that transaction has committed.

        `one_statement`: the unit writes with a single statement, atomic by itself, so when it has no
        company on PostgreSQL it runs without BEGIN/COMMIT: one round trip."""
        conn = sql.client()
        if isinstance(conn, TransactionalDBClient):
            return await sql.drive_async(unit, conn)
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one carries over
            self._loop, self._pending, self._writer = loop, [], None
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((unit, future, one_statement))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name="securemsg-group-commit")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = [(u, f, one) for u, f, one in self._pending[: self.max_batch] if not f.done()]
            del self._pending[: self.max_batch]
            if not batch:
                continue
            try:
                if len(batch) == 1 and batch[0][2] and sql.sqlite_thread_runner(sql.client()) is None:
                    outcomes = await self._alone(batch[0][0])
                else:
                    outcomes = await self._commit([u for u, _, _ in batch])
            except BaseException as exc:
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            # In batch order, so the callers wake (and publish their events) in the order of their messages.
            sql.settle([future for _, future, _ in batch], outcomes)

    async def _alone(self, unit: Unit[Any]) -> list[Outcome]:
        self.batches += 1
        self.units += 1
        if self.on_batch is not None:
            self.on_batch(1)
        try:
            return [(True, await sql.drive_async(unit, sql.client()))]
        except Exception as exc:
            if not unit_specific(exc):
                raise
            return [(False, exc)]

    async def _commit(self, units: list[Unit[Any]]) -> list[Outcome]:
        self.batches += 1
        self.units += len(units)
        if self.on_batch is not None:
            self.on_batch(len(units))
        conn = sql.client()
        if sql.sqlite_thread_runner(conn) is not None:
            database = sql.sqlite_file(conn)
            held = await writerlock.turn(database) if database is not None else None
            done = held.release if held is not None else None
            try:
                async with conn.acquire_connection() as aconn:
                    batch = functools.partial(_sqlite_batch, units, done=done)
                    return await _compat.run_in_sqlite_thread(aconn, batch)
            finally:
                if held is not None:
                    held.release()
        return await _transaction_batch(units)


def _sqlite_batch(
    units: list[Unit[Any]], db: sqlite3.Connection, done: Callable[[], None] | None = None
) -> list[Outcome]:
    """In aiosqlite's thread: the whole batch, retried without any unit that fails on its own account;
    `done` (letting the other processes' writers in, `inbox.store.writerlock`) right after it ends."""
    try:
        return _sqlite_transaction(units, db)
    finally:
        if done is not None:
            done()


def _sqlite_transaction(units: list[Unit[Any]], db: sqlite3.Connection) -> list[Outcome]:
    failed: dict[int, BaseException] = {}
    while True:
        results: dict[int, Any] = {}
        db.execute("BEGIN IMMEDIATE")
        try:
            for i, unit in enumerate(units):
                if i in failed:
                    continue
                try:
                    results[i] = sql.drive_sync(unit, db)
                except Exception as exc:
                    if not unit_specific(exc):
                        raise
                    failed[i] = exc
                    raise _Retry from None
            db.execute("COMMIT")
        except _Retry:
            db.execute("ROLLBACK")
            continue
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return [(True, results[i]) if i in results else (False, failed[i]) for i in range(len(units))]


async def _transaction_batch(units: list[Unit[Any]]) -> list[Outcome]:
    failed: dict[int, BaseException] = {}
    while True:
        results: dict[int, Any] = {}
        try:
            async with in_transaction() as conn:
                for i, unit in enumerate(units):
                    if i in failed:
                        continue
                    try:
                        results[i] = await sql.drive_async(unit, conn)
                    except Exception as exc:
                        if not unit_specific(exc):
                            raise
                        failed[i] = exc
                        raise _Retry from None
        except _Retry:
            continue
        return [(True, results[i]) if i in results else (False, failed[i]) for i in range(len(units))]
