"""Group commit (inbox.store.groupcommit): concurrent write units share transactions without weakening what each
caller is told. On SQLite and PostgreSQL, against the real database; "committed" is checked through a
connection of the test's own, outside the app."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import pytest
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from gateway.keys import CTX
from inbox.db import unavailable
from inbox.errors import Forbidden
from inbox.models import AuthToken, Practice
from inbox.store.groupcommit import GroupCommit
from inbox.store.sql import Stmt


def new_token_unit(practice_id: int, token_hash: str) -> Any:
    """A write unit: one auth_token row (token_hash is unique, so a repeated hash fails on its own)."""

    def unit() -> Generator[Stmt, Any, int]:
        rows = yield Stmt(
            "INSERT INTO auth_token (token_hash, kind, practice_id, created_at) VALUES (?, ?, ?, ?) "
            "RETURNING id",
            (token_hash, "api_key", practice_id, datetime(2026, 1, 5, 9, tzinfo=UTC)),
            rows=True,
        )
        return int(rows[0]["id"])

    return unit


def refusing_unit() -> Generator[Stmt, Any, int]:
    yield Stmt("SELECT 1", (), rows=True)
    raise Forbidden("not_allowed", "This unit is refused on its own account.")


def terminating_unit() -> Generator[Stmt, Any, int]:
    """PostgreSQL: the server ends this connection, as a restart or a failover would."""
    yield Stmt("SELECT pg_terminate_backend(pg_backend_pid())", (), rows=True)
    return 0


def broken_sql_unit() -> Generator[Stmt, Any, int]:
    yield Stmt("INSERT INTO no_such_table (x) VALUES (?)", (1,))
    return 0


async def committed_hashes(db_url: str) -> set[str]:
    """What another connection sees: only committed rows."""
    if db_url.startswith("sqlite://"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite://"))
        try:
            return {r[0] for r in conn.execute("SELECT token_hash FROM auth_token")}
        finally:
            conn.close()
    import asyncpg

    pg = await asyncpg.connect(db_url.replace("postgres://", "postgresql://", 1))
    try:
        return {r["token_hash"] for r in await pg.fetch("SELECT token_hash FROM auth_token")}
    finally:
        await pg.close()


@pytest.fixture
async def practice_id(client: Any) -> int:
    # `client` starts the app, so the database is connected and migrated.
    practice = await Practice.create(name="Group Commit Clinic", created_at=datetime.now(UTC))
    return practice.id


async def test_concurrent_units_share_transactions_and_each_caller_returns_after_its_commit(
    client: Any, practice_id: int, db_url: str
) -> None:
    writes = GroupCommit()
    hashes = [uuid.uuid4().hex for _ in range(40)]
    ids = await asyncio.gather(*(writes.run(new_token_unit(practice_id, h)) for h in hashes))
    assert len(set(ids)) == 40
    assert writes.units == 40 and writes.batches < 40  # shared transactions, not one each
    assert set(hashes) <= await committed_hashes(db_url)  # every caller was answered after its commit


async def test_an_idle_writer_commits_a_lone_unit_at_once(client: Any, practice_id: int, db_url: str) -> None:
    writes = GroupCommit()
    h = uuid.uuid4().hex
    await asyncio.wait_for(writes.run(new_token_unit(practice_id, h)), timeout=5)
    assert (writes.batches, writes.units) == (1, 1)
    assert h in await committed_hashes(db_url)


async def test_a_unit_that_fails_on_its_own_account_does_not_fail_the_others(
    client: Any, practice_id: int, db_url: str
) -> None:
    writes = GroupCommit()
    taken = uuid.uuid4().hex
    await writes.run(new_token_unit(practice_id, taken))
    good = [uuid.uuid4().hex for _ in range(10)]
    units = [new_token_unit(practice_id, h) for h in good[:5]]
    units += [new_token_unit(practice_id, taken), refusing_unit]  # a duplicate, and a refusal
    units += [new_token_unit(practice_id, h) for h in good[5:]]
    before = writes.batches
    results = await asyncio.gather(*(writes.run(u) for u in units), return_exceptions=True)
    assert writes.batches == before + 1  # all of them were in one batch
    assert isinstance(results[5], IntegrityError)
    assert isinstance(results[6], Forbidden) and results[6].code == "not_allowed"
    assert all(isinstance(r, int) for i, r in enumerate(results) if i not in (5, 6))
    seen = await committed_hashes(db_url)
    assert set(good) <= seen and taken in seen


async def test_a_database_error_of_one_units_own_fails_only_that_unit(
    client: Any, practice_id: int, db_url: str
) -> None:
    """Bad SQL (a table that is not there) is that unit's fault, not the database's: it used to fail every
    unit of the batch, each caller answered 503."""
    writes = GroupCommit()
    hashes = [uuid.uuid4().hex for _ in range(4)]
    units = [new_token_unit(practice_id, h) for h in hashes[:2]]
    units += [broken_sql_unit]
    units += [new_token_unit(practice_id, h) for h in hashes[2:]]
    results = await asyncio.gather(*(writes.run(u) for u in units), return_exceptions=True)
    assert isinstance(results[2], OperationalError), results
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 2), results
    assert set(hashes) <= await committed_hashes(db_url)


async def test_a_lost_connection_fails_the_whole_batch_and_writes_nothing_of_it(
    client: Any, practice_id: int, db_url: str
) -> None:
    """Unavailability is every unit's: on PostgreSQL a unit whose connection the server ends (as a restart
    would), on SQLite a file another writer holds locked; nothing of the batch is written."""
    writes = GroupCommit()
    hashes = [uuid.uuid4().hex for _ in range(4)]
    units = [new_token_unit(practice_id, h) for h in hashes]
    holder = None
    if db_url.startswith("sqlite://"):
        holder = sqlite3.connect(db_url.removeprefix("sqlite://"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        units.insert(2, terminating_unit)
    try:
        results = await asyncio.gather(*(writes.run(u) for u in units), return_exceptions=True)
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    assert all(isinstance(r, Exception) and unavailable(r) for r in results), results
    assert not set(hashes) & await committed_hashes(db_url)
    # The writer is not stuck: the next unit commits.
    h = uuid.uuid4().hex
    await writes.run(new_token_unit(practice_id, h))
    assert h in await committed_hashes(db_url)


async def test_a_unit_whose_caller_gave_up_before_its_batch_began_is_never_written(
    client: Any, practice_id: int, db_url: str
) -> None:
    writes = GroupCommit()
    first, dropped = uuid.uuid4().hex, uuid.uuid4().hex
    t1 = asyncio.create_task(writes.run(new_token_unit(practice_id, first)))
    await asyncio.sleep(0)  # t1 queues its unit and starts the writer
    await asyncio.sleep(0)  # the writer takes t1's batch and waits for its commit
    t2 = asyncio.create_task(writes.run(new_token_unit(practice_id, dropped)))
    await asyncio.sleep(0)  # t2's unit waits for the next batch
    t2.cancel()
    await t1
    with pytest.raises(asyncio.CancelledError):
        await t2
    await writes.run(new_token_unit(practice_id, uuid.uuid4().hex))  # the writer went on
    seen = await committed_hashes(db_url)
    assert first in seen and dropped not in seen


async def test_inside_a_callers_transaction_a_unit_is_part_of_it(
    client: Any, practice_id: int, db_url: str
) -> None:
    writes = GroupCommit()
    h = uuid.uuid4().hex
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await writes.run(new_token_unit(practice_id, h))
            assert await AuthToken.filter(token_hash=h).exists()
            raise RuntimeError("roll it all back")
    assert writes.batches == 0
    assert h not in await committed_hashes(db_url)


async def test_the_apps_sends_go_through_its_group_commit(api: Any, cast: Any, client: Any) -> None:
    writes = client.server.app[CTX].writes
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")]}, token=cast.tok("clinician")
    )
    assert status == 201
    before = writes.units
    status, _ = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": "hello"}, token=cast.tok("clinician")
    )
    assert status == 201 and writes.units == before + 1
