"""The library names `inbox.store._compat` reaches into are still there, with the signatures it calls them
with: an upgrade of Tortoise or aiosqlite that changes one fails here, by name, instead of quietly slowing
the send path down (or breaking it). And what they are used for still works, end to end."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tortoise import Tortoise

from inbox import db
from inbox.models import Message, Practice
from inbox.store import _compat, sql


@pytest.mark.parametrize(("owner", "name", "params"), _compat.EXPECTED, ids=lambda v: str(v))
def test_each_private_name_is_there_with_the_signature_we_call(
    owner: object, name: str, params: tuple[str, ...] | None
) -> None:
    assert hasattr(owner, name), f"{owner!r} no longer has {name}: see inbox/store/_compat.py"
    if params is None:
        assert isinstance(inspect.getattr_static(owner, name), property), (
            f"{owner!r}.{name} is not a property"
        )
    else:
        assert _compat.signature_of(owner, name) == params, (
            f"{owner!r}.{name} changed: see inbox/store/_compat.py"
        )


@pytest.fixture
async def connected(tmp_path: Path) -> AsyncIterator[None]:
    url = f"sqlite://{tmp_path / 'compat.sqlite3'}"
    await db.migrate(url)
    await db.connect(url)
    try:
        yield
    finally:
        await db.disconnect()


@pytest.mark.usefixtures("connected")
async def test_a_model_made_from_a_row_converts_like_tortoise_and_counts_as_saved() -> None:
    row = {
        "id": 7,
        "conversation_id": 3,
        "sender_id": 2,
        "body_cipher": b"\x00",
        "client_msg_id": None,
        "created_at": "2026-01-05 09:00:00.123456+00:00",  # SQLite's text
        "removed_at": None,
        "removed_by_id": None,
    }
    msg = sql.model_from_row(Message, row)
    assert (msg.id, msg.conversation_id, msg.created_at.year) == (7, 3, 2026)
    assert msg._saved_in_db  # an update, not an insert, if it is saved


@pytest.mark.usefixtures("connected")
async def test_the_whole_batch_runs_in_aiosqlites_thread() -> None:
    await Practice.create(
        name="Riverbend", created_at=datetime.now(UTC)
    )  # Tortoise opens its SQLite connection on the first query
    conn = Tortoise.get_connection("default")
    aconn = sql.sqlite_thread_runner(conn)
    assert aconn is not None, "the group commit would fall back to a statement at a time"
    async with conn.acquire_connection() as held:
        names = await _compat.run_in_sqlite_thread(
            held, lambda c: [r[0] for r in c.execute("SELECT name FROM practice")]
        )
    assert names == ["Riverbend"]


async def test_requests_in_other_tasks_see_the_connections_and_a_second_start_works(tmp_path: Path) -> None:
    """`db.connect` makes its connections the global fallback (aiohttp's request tasks do not inherit the
    start-up task's context); `db.disconnect` clears it, so the next start (a test, a restart) can set it."""

    url = f"sqlite://{tmp_path / 'global.sqlite3'}"
    await db.migrate(url)
    for _ in range(2):
        await db.connect(url)
        try:

            async def count() -> int:
                return await Practice.all().count()

            task = asyncio.get_running_loop().create_task(
                count(),
                context=contextvars.Context(),  # a context without Tortoise's
            )
            assert await task == 0
        finally:
            await db.disconnect()
