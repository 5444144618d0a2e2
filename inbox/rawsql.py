"""Prepared raw SQL for the hot paths (who is calling, sending a message), on SQLite and PostgreSQL.

On the send path Tortoise's query building cost more than the queries themselves, and on SQLite every query
is a hop to aiosqlite's thread and back. So the hot paths write their SQL by hand, and a piece of work is a
*unit*: a generator that yields `Stmt`s and is sent each one's answer (the rows as dicts, or the row count),
returning its result at the end. One definition of the SQL, two ways to drive it:

- `drive_sync`: in SQLite's own thread, every statement of the unit (or of a whole batch of units, see
  `inbox.groupcommit`) in one hop;
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
from dataclasses import dataclass
from typing import Any, TypeVar

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.models import Model

T = TypeVar("T")
M = TypeVar("M", bound=Model)


@dataclass(frozen=True, slots=True)
class Stmt:
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
                cursor = db.execute(stmt.sql, stmt.params)
                answer: Any = [dict(r) for r in cursor.fetchall()] if stmt.rows else cursor.rowcount
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

    `aiosqlite.Connection._execute(fn)` runs `fn` in the connection's thread; Tortoise itself reaches into
    aiosqlite's `_conn` the same way. Both are checked here, so a change in aiosqlite costs speed, not
    correctness."""
    if conn.capabilities.dialect != "sqlite" or isinstance(conn, TransactionalDBClient):
        return None
    aconn = getattr(conn, "_connection", None)
    if aconn is None or not hasattr(aconn, "_execute") or not hasattr(type(aconn), "_conn"):
        return None
    return aconn


class SqliteReader:
    """A second, read-only connection to the SQLite file, in a thread of its own.

    Tortoise has one connection per SQLite database, and every query waits for its lock, so the send
    path's reads (who is calling, the conversation's members) would queue behind the group commit's
    transaction and its disk sync. In WAL mode readers and the writer do not block each other, so these
    reads go here and run while the writer writes. They see what has been committed, which is all they
    need: nothing reads its own uncommitted writes through here (inside a transaction, `read` uses the
    transaction's connection)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="securemsg-sqlite-read")
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA query_only = ON")
            self._db = db
        return self._db

    def _run(self, unit: Unit[T]) -> T:
        db = self._connection()
        db.execute("BEGIN")  # one snapshot for the whole unit
        try:
            return drive_sync(unit, db)
        finally:
            db.execute("COMMIT")

    async def run(self, unit: Unit[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, unit)

    def close(self) -> None:
        def close_db() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._pool.submit(close_db)
        self._pool.shutdown(wait=True)


_READERS: dict[str, SqliteReader] = {}


def _reader_for(conn: BaseDBAsyncClient) -> SqliteReader | None:
    if conn.capabilities.dialect != "sqlite" or isinstance(conn, TransactionalDBClient):
        return None
    path = getattr(conn, "filename", "")
    if not path or ":memory:" in path or "mode=memory" in path:
        return None  # a second connection would see another database
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
    reader = _reader_for(conn)
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
    return model._init_from_db(**row)


def columns(model: type[Model], alias: str) -> str:
    """`a.id, a.name, ...` for every column of the model (for a SELECT that joins it)."""
    return ", ".join(f"{alias}.{c}" for c in model._meta.fields_db_projection.values())


def db_value(model: type[Model], field: str, value: Any) -> Any:
    """A Python value as Tortoise would store it in this model's field (JSON text, for instance)."""
    return model._meta.fields_map[field].to_db_value(value, model)


def python_value(model: type[Model], field: str, value: Any) -> Any:
    """A stored value as Tortoise would load it (JSON text parsed, for instance)."""
    return model._meta.fields_map[field].to_python_value(value)
