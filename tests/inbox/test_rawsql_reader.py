"""The SQLite reader (inbox.store.sql.SqliteReader): the send path's lookups run in the event loop, see what
has been committed, and go to the reader's thread — never blocking the loop — when SQLite would have them
wait for a lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from inbox.store.sql import SqliteReader, Stmt


def count_rows() -> Generator[Stmt, Any, int]:
    rows = yield Stmt("SELECT count(*) AS n FROM probe", (), rows=True)
    return int(rows[0]["n"])


def database(tmp_path: Path) -> str:
    """A database file in WAL mode, as the app keeps it."""
    path = str(tmp_path / "reader.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE probe (name TEXT)")
    finally:
        db.close()
    return path


def add_row(path: str, name: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("INSERT INTO probe (name) VALUES (?)", (name,))
    finally:
        db.close()


async def test_a_lookup_runs_in_the_loop_and_sees_each_commit(tmp_path: Path) -> None:
    path = database(tmp_path)
    reader = SqliteReader(path)
    try:
        assert await reader.run(count_rows) == 0
        add_row(path, "Riverbend")  # committed by another connection after the reader's first read
        assert await reader.run(count_rows) == 1
        assert (reader.inline, reader.hops) == (2, 0)  # no hop to the thread
    finally:
        reader.close()


async def test_a_lookup_that_would_wait_for_a_lock_waits_in_the_thread_and_the_loop_runs_on(
    tmp_path: Path,
) -> None:
    path = database(tmp_path)
    add_row(path, "Riverbend")
    # Another connection takes the database for itself: in WAL mode with locking_mode=EXCLUSIVE, readers on
    # other connections are told "busy" until it lets go.
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO probe (name) VALUES ('Lakeside')")
    holder.execute("COMMIT")

    def let_go() -> None:
        holder.execute("PRAGMA locking_mode = NORMAL")
        holder.execute("SELECT count(*) FROM probe").fetchall()  # the mode change takes effect here
        holder.close()

    reader = SqliteReader(path)
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            await asyncio.sleep(0.01)
            beats += 1

    beating = asyncio.create_task(heartbeat())
    timer = threading.Timer(0.5, let_go)
    try:
        timer.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await asyncio.wait_for(reader.run(count_rows), timeout=10) == 2
        waited = loop.time() - started
        assert waited >= 0.4  # it did wait for the lock …
        assert beats >= 10  # … while the loop went on serving others
        assert (reader.inline, reader.hops) == (0, 1)
        assert await reader.run(count_rows) == 2
        assert reader.inline == 1  # back in the loop once the lock is gone
    finally:
        timer.join()
        beating.cancel()
        reader.close()
