"""Prepared raw SQL for the hot paths (who is calling, sending a message), on SQLite and PostgreSQL: the
machinery the store's raw units run on (`inbox.store.messages`, `inbox.store.tokens`, ...).

On the send path Tortoise's query building cost more than the queries themselves, and on SQLite every query
is a hop to aiosqlite's thread and back. So the hot paths write their SQL by hand, and a piece of work is a
*unit*: a generator that yields `Stmt`s and is sent each one's answer (the rows as dicts, or the row count),
returning its result at the end. One definition of the SQL, two ways to drive it:

- `drive_sync`: in SQLite's own thread, every statement of the unit (or of a whole batch of units, see
  `inbox.store.groupcommit`) in one hop;
- `drive_async`: statement by statement through a Tortoise connection (PostgreSQL; SQLite inside a
  transaction someone else opened).

SQL is written once, with `?` placeholders and portable syntax (TRUE/FALSE, RETURNING); for PostgreSQL the
placeholders become `$1, $2, ...`. Database errors come out as Tortoise's `IntegrityError` /
`OperationalError` from both drivers, so callers catch one kind.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, NamedTuple, TypeVar

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.fields import DatetimeField
from tortoise.models import Model

from inbox.store import _compat

T = TypeVar("T")
M = TypeVar("M", bound=Model)


class Stmt(NamedTuple):
    sql: str  # `?` placeholders
    params: Sequence[Any] = ()
    rows: bool = False  # answer the rows (list of dicts) rather than the row count


Unit = Callable[[], Generator[Stmt, Any, T]]


def client() -> BaseDBAsyncClient:
    """The connection the caller would use now (a transaction's, inside `in_transaction()`)."""
    return Tortoise.get_connection("default")


def is_postgres(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "postgres"


_PG_SQL: dict[str, str] = {}


def pg_sql(sql: str) -> str:
    """`?` → `$n` (our SQL never holds a `?` inside a literal)."""
    done = _PG_SQL.get(sql)
    if done is None:
        parts = sql.split("?")
        done = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
        _PG_SQL[sql] = done
    return done


def marks(n: int) -> str:
    """`?,?,?` for an IN list of n values."""
    return ",".join("?" * n)


def drive_sync(unit: Unit[T], db: sqlite3.Connection) -> T:
    """Run a unit on a sqlite3 connection, in the thread that owns it."""
    gen = unit()
    try:
        stmt = next(gen)
        while True:
            try:
                # Plain tuples, whatever the connection's row factory: a dict from the column names and a
                # tuple costs a fifth of `dict(sqlite3.Row)` (docs/benchmarks.md, the send path's profile).
                cursor = db.cursor()
                cursor.row_factory = None
                cursor.execute(stmt.sql, stmt.params)
                answer: Any = cursor.rowcount
                if stmt.rows:
                    names = [d[0] for d in cursor.description or ()]
                    answer = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            except sqlite3.IntegrityError as exc:
                raise IntegrityError(exc) from exc
            except sqlite3.OperationalError as exc:
                raise OperationalError(exc) from exc
            stmt = gen.send(answer)
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()


async def drive_async(unit: Unit[T], conn: BaseDBAsyncClient) -> T:
    """Run a unit statement by statement through a Tortoise connection."""
    pg = is_postgres(conn)
    gen = unit()
    try:
        stmt = next(gen)
        while True:
            sql = pg_sql(stmt.sql) if pg else stmt.sql
            answer: Any
            if stmt.rows:
                answer = await conn.execute_query_dict(sql, list(stmt.params))
            else:
                answer, _ = await conn.execute_query(sql, list(stmt.params))
            stmt = gen.send(answer)
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()


def sqlite_thread_runner(conn: BaseDBAsyncClient) -> Any | None:
    """The aiosqlite connection whose thread can run a whole unit in one hop, or None (PostgreSQL, a
    transaction in progress, or an aiosqlite without the hook: then units go statement by statement).

    Running a function in aiosqlite's thread takes its private names: see `inbox.store._compat`, which
    checks them, so a change in aiosqlite costs speed, not correctness."""
    if conn.capabilities.dialect != "sqlite" or isinstance(conn, TransactionalDBClient):
        return None
    aconn = _compat.sqlite_connection(conn)
    if aconn is None or not _compat.has_sqlite_thread(aconn):
        return None
    return aconn


def sqlite_file(conn: BaseDBAsyncClient) -> str | None:
    """The path of a Tortoise SQLite client's database file; None for an in-memory database."""
    if conn.capabilities.dialect != "sqlite":
        return None
    path = getattr(conn, "filename", "")
    if not isinstance(path, str) or not path or ":memory:" in path or "mode=memory" in path:
        return None  # a second connection (a reader, another process) would see another database
    return path


class SqliteReader:
    """A second, read-only connection to the SQLite file, in a thread of its own.

    Tortoise has one connection per SQLite database, and every query waits for its lock, so the send
    path's reads (who is calling, the conversation's members) would queue behind the group commit's
    transaction and its disk sync. In WAL mode readers and the writer do not block each other, so these
    reads go here and run while the writer writes. They see what has been committed, which is all they
    need: nothing reads its own uncommitted writes through here (inside a transaction, `read` uses the
    transaction's connection).

    The reads that use it are a few indexed lookups, tens of microseconds of SQLite's time: less than a hop
    to a thread and back costs (the hand-over, the wake-up, and the GIL under load). So a read first runs
    right here in the event loop, on a connection of its own that never waits for a lock (busy timeout 0).
    Only when SQLite answers "busy" — another connection is doing something readers must wait for, such as
    recovering the write-ahead log — does the read go to the thread, whose connection waits as long as
    SQLite's usual timeout, while the loop serves everyone else. (A lookup on pages not yet in the page cache
    or the OS's reads the disk in the loop; on the send path these are the same few index pages every time.)

    Reads that arrive while the thread is busy go together in its next hop, one snapshot for all of them:
    under load a hop to the thread and back is paid per batch, not per read."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="securemsg-sqlite-read")
        self._db: sqlite3.Connection | None = None
        self._inline_db: sqlite3.Connection | None = None
        self._pending: list[tuple[Unit[Any], asyncio.Future[Any]]] = []
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.hops = 0  # for benchmarks and tests: hops to the thread, and the reads they carried
        self.units = 0
        self.inline = 0  # reads answered in the loop

    def _open(self, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA query_only = ON")
        return db

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open(timeout=5.0)  # Python's default: wait up to 5 s for a lock
        return self._db

    async def run(self, unit: Unit[T]) -> T:
        try:
            return self._run_inline(unit)
        except _Busy:
            pass  # wait for SQLite in the thread, not in the loop
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._pending, self._busy = loop, [], False
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((unit, future))
        if not self._busy:
            self._start(loop)
        return await future

    def _run_inline(self, unit: Unit[T]) -> T:
        """The read, here and now, or `_Busy` (nothing read) when SQLite would have it wait for a lock."""
        try:
            if self._inline_db is None:
                self._inline_db = self._open(timeout=0)
            db = self._inline_db
            db.execute("BEGIN")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _Busy from exc
            raise OperationalError(exc) from exc
        try:
            result = drive_sync(unit, db)
        except OperationalError as exc:
            if _is_busy(exc.__cause__):
                raise _Busy from exc
            raise
        finally:
            db.execute("ROLLBACK")  # a read-only transaction: nothing to keep, and never busy
        self.inline += 1
        return result

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending, []
        self._busy = True
        self.hops += 1
        self.units += len(batch)
        self._pool.submit(self._hop, loop, batch)

    def _hop(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Unit[Any], Any]]) -> None:
        """In the reader's thread: every unit of the batch, then one call back into the loop."""
        outcomes: list[tuple[bool, Any]] = []
        try:
            db = self._connection()
            db.execute("BEGIN")  # one snapshot for the batch
            try:
                for unit, _ in batch:
                    try:
                        outcomes.append((True, drive_sync(unit, db)))
                    except Exception as exc:
                        outcomes.append((False, exc))
            finally:
                db.execute("COMMIT")
        except Exception as exc:  # the file cannot be opened or read at all
            outcomes += [(False, exc)] * (len(batch) - len(outcomes))
        try:
            loop.call_soon_threadsafe(self._finish, loop, batch, outcomes)
        except RuntimeError:
            pass  # the loop has closed: nobody is waiting any more

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[Unit[Any], asyncio.Future[Any]]],
        outcomes: list[tuple[bool, Any]],
    ) -> None:
        settle([future for _, future in batch], outcomes)
        if self._loop is loop:
            self._busy = False
            if self._pending:
                self._start(loop)

    def close(self) -> None:
        if self._inline_db is not None:
            self._inline_db.close()
            self._inline_db = None

        def close_db() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._pool.submit(close_db)
        self._pool.shutdown(wait=True)


def settle(futures: Sequence[asyncio.Future[Any]], outcomes: Sequence[tuple[bool, Any]]) -> None:
    """Give each waiting caller its outcome, `(True, result)` or `(False, exception)`, in order; a caller
    that has gone away (its future cancelled) is skipped."""
    for future, (ok, value) in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class _Busy(Exception):
    """SQLite would have a read wait for a lock."""


def _is_busy(exc: BaseException | None) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, or one of their extended codes (SQLITE_BUSY_RECOVERY, …)."""
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.OperationalError) else None
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


_READERS: dict[str, SqliteReader] = {}


def reader_for(conn: BaseDBAsyncClient) -> SqliteReader | None:
    if isinstance(conn, TransactionalDBClient):
        return None
    path = sqlite_file(conn)
    if path is None:
        return None
    reader = _READERS.get(path)
    if reader is None:
        reader = _READERS[path] = SqliteReader(path)
    return reader


def close_readers() -> None:
    """Called when the database connections close (`inbox.db.disconnect`)."""
    while _READERS:
        _, reader = _READERS.popitem()
        reader.close()


async def read(unit: Unit[T]) -> T:
    """Run a read-only unit: on SQLite through the reader connection, in one hop; otherwise through the
    connection the caller would use now (a transaction's, inside `in_transaction()`)."""
    conn = client()
    reader = reader_for(conn)
    if reader is not None:
        return await reader.run(unit)
    return await drive_async(unit, conn)


async def fetch(sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    def unit() -> Generator[Stmt, Any, list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = yield Stmt(sql, params, rows=True)
        return rows

    return await read(unit)


def model_from_row(model: type[M], row: Mapping[str, Any]) -> M:
    """A model instance from a row holding all of its columns (extra keys are ignored), as if Tortoise had
    loaded it: same conversions, and it can be saved."""
    values = dict(row)
    for column in _datetime_columns(model):
        value = values.get(column)
        if isinstance(value, str):
            values[column] = to_datetime(value)
    return _compat.model_from_db(model, values)


@cache
def _datetime_columns(model: type[Model]) -> tuple[str, ...]:
    meta = model._meta
    return tuple(
        meta.fields_db_projection[name]
        for name, f in meta.fields_map.items()
        if isinstance(f, DatetimeField) and name in meta.fields_db_projection
    )


def to_datetime(value: Any) -> datetime | None:
    """A stored timestamp as an aware UTC datetime. SQLite keeps the text Tortoise wrote
    (`2026-01-05 09:00:00.123456+00:00`); `fromisoformat` reads it far faster than Tortoise's parser."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.utcoffset() == timedelta(0) else value.astimezone(UTC)


def columns(model: type[Model], alias: str) -> str:
    """`a.id, a.name, ...` for every column of the model (for a SELECT that joins it)."""
    return ", ".join(f"{alias}.{c}" for c in model._meta.fields_db_projection.values())


def db_value(model: type[Model], field: str, value: Any) -> Any:
    """A Python value as Tortoise would store it in this model's field (JSON text, for instance)."""
    return model._meta.fields_map[field].to_db_value(value, model)


def python_value(model: type[Model], field: str, value: Any) -> Any:
    """A stored value as Tortoise would load it (JSON text parsed, for instance)."""
    return model._meta.fields_map[field].to_python_value(value)
