"""The SQLite writers' lock between processes (inbox.store.writerlock): a group commit waits for another
process's turn without sleeping past it, and never waits without bound.

"Another process" is a file descriptor of the test's own holding the same `flock`: flock locks belong to an
open file description, so a second descriptor in this process is kept out exactly as another process is
(the multi-process tests in tests/scale run the real thing)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from inbox import db
from inbox.db import unavailable
from inbox.models import Practice
from inbox.store import writerlock
from inbox.store.groupcommit import GroupCommit
from tests.inbox.test_groupcommit import committed_hashes, new_token_unit


@pytest.fixture
def database(tmp_path: Path) -> str:
    return str(tmp_path / "securemsg.sqlite3")


class Holder:
    """The lock held from outside the code under test, as another process's group commit holds it."""

    def __init__(self, database: str) -> None:
        self.fd = os.open(writerlock.lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.fixture
def holder(database: str) -> Iterator[Holder]:
    held = Holder(database)
    yield held
    held.release()


def is_free(database: str) -> bool:
    fd = os.open(writerlock.lock_path(database), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


async def eventually(check: Any) -> None:
    async with asyncio.timeout(10):
        while not check():  # noqa: ASYNC110 - another thread lets the lock go; no event to wait on
            await asyncio.sleep(0.01)


async def test_a_free_lock_is_taken_at_once_and_its_file_is_the_owners_only(database: str) -> None:
    turn = await writerlock.turn(database)
    assert not is_free(database)
    turn.release()
    turn.release()  # a second release does nothing (no other file's descriptor is closed)
    assert is_free(database)
    mode = stat.S_IMODE(os.stat(writerlock.lock_path(database)).st_mode)
    assert mode & 0o077 == 0, oct(mode)


async def test_a_waiter_gets_the_lock_when_the_holder_lets_go(database: str, holder: Holder) -> None:
    waiting = asyncio.ensure_future(writerlock.turn(database))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # kept out while another holds it
    holder.release()
    turn = await asyncio.wait_for(waiting, timeout=5)
    assert not is_free(database)
    turn.release()
    assert is_free(database)


async def test_a_wait_is_bounded_and_answers_as_unavailable(database: str, holder: Holder) -> None:
    """A holder that hangs without dying (stopped, or stuck) keeps the lock; a waiter gives up as SQLite's
    busy timeout would, with an error the API answers 503, and the lock taken later is let go unused."""
    with pytest.raises(TimeoutError) as raised:
        await writerlock.turn(database, timeout_s=0.3)
    assert unavailable(raised.value)
    holder.release()
    await eventually(lambda: is_free(database))  # the waiter thread's late turn was not kept
    # and the next caller is not stuck behind it
    turn = await asyncio.wait_for(writerlock.turn(database), timeout=5)
    turn.release()


async def test_a_cancelled_wait_leaves_the_lock_free(database: str, holder: Holder) -> None:
    waiting = asyncio.ensure_future(writerlock.turn(database))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    holder.release()
    await eventually(lambda: is_free(database))


@pytest.fixture
async def practice_id(client: Any) -> int:
    practice = await Practice.create(name="Writer Lock Clinic", created_at=datetime.now(UTC))
    return practice.id


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_group_commit_waits_for_another_processs_turn_then_commits(
    client: Any, practice_id: int, db_url: str
) -> None:
    database = db_url.removeprefix("sqlite://")
    other = Holder(database)
    try:
        writes = GroupCommit()
        h = uuid.uuid4().hex
        sending = asyncio.ensure_future(writes.run(new_token_unit(practice_id, h)))
        await asyncio.sleep(0.3)
        assert not sending.done()
        assert h not in await committed_hashes(db_url)
        other.release()
        await asyncio.wait_for(sending, timeout=5)
        assert h in await committed_hashes(db_url)
        assert is_free(database)  # let go once the batch committed
    finally:
        other.release()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_transaction_that_reads_then_writes_waits_for_another_processs_commit(
    client: Any, practice_id: int, db_url: str
) -> None:
    """Another process writes the file meanwhile. A transaction that began DEFERRED (Tortoise's own) read
    before that commit and then could not write over it: "database is locked" at once, a 503, although the
    other writer was done. Begun IMMEDIATE, it waits for the other writer's turn, then reads and writes."""
    other = sqlite3.connect(db_url.removeprefix("sqlite://"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the other process is in the middle of a write

        async def rename() -> None:
            async with db.transaction():
                practice = await Practice.get(id=practice_id)
                await Practice.filter(id=practice_id).update(name=practice.name + " (renamed)")

        renaming = asyncio.ensure_future(rename())
        await asyncio.sleep(0.3)
        other.execute("UPDATE practice SET name = 'Writer Lock Clinic, again' WHERE id = ?", (practice_id,))
        other.execute("COMMIT")
        await asyncio.wait_for(renaming, timeout=5)
    finally:
        other.close()
    assert (await Practice.get(id=practice_id)).name == "Writer Lock Clinic, again (renamed)"
