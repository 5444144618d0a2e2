"""`inbox.db.connect` opens the connection before it returns, so no query can be the one that opens it.

aiosqlite opens a connection in a thread of its own; a task cancelled while that is under way (a
background loop stopped by a start that fails a moment later, or by a shutdown) strands it: the thread
never ends, holds its SQLite file open, and keeps the process from exiting (it is not a daemon thread).
Seen as a run that hung after its last test, and as "Event loop is closed" from that thread."""

from __future__ import annotations

import asyncio
import contextlib

from inbox import db
from tests.conftest import _sqlite_threads


async def cancel_a_first_query() -> None:
    """Start the first query after connecting and cancel it while it is under way."""
    first = asyncio.create_task(db.ready(5))
    await asyncio.sleep(0)  # under way
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first


async def test_a_query_cancelled_at_once_after_connect_leaves_no_thread_behind(sqlite_url: str) -> None:
    before = _sqlite_threads()
    await db.connect(sqlite_url)
    try:
        opened = _sqlite_threads() - before
        assert len(opened) == 1  # the connection is open already
        await cancel_a_first_query()
        assert await db.ready(5)
    finally:
        await db.disconnect()
    left = _sqlite_threads() - before
    for thread in left:
        thread.join(timeout=5)
    assert not [t for t in left if t.is_alive()]


async def test_the_database_answers_after_a_first_query_was_cancelled(db_url: str) -> None:
    await db.connect(db_url)
    try:
        await cancel_a_first_query()
        assert await db.ready(5)
    finally:
        await db.disconnect()
