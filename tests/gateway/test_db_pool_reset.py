"""PostgreSQL connections go back to the pool without asyncpg's reset round trip (inbox.db._release_reset):
that is only safe while nothing leaves session state on a pooled connection, and while a transaction left
open is still rolled back. Both are checked here, after real traffic through the API."""

from __future__ import annotations

from typing import Any

import pytest
from tortoise import Tortoise

from tests.conftest import Api, Cast

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_url", ["postgres"], indirect=True)]


def _pool() -> Any:
    conn = Tortoise.get_connection("default")
    assert conn.capabilities.dialect == "postgres"
    return conn._pool


async def _traffic(api: Api, cast: Cast) -> None:
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")]}, token=cast.tok("clinician")
    )
    assert status == 201, conv
    for i in range(5):
        status, sent = await api.post(
            f"/conversations/{conv['id']}/messages", {"body": f"hello {i}"}, token=cast.tok("clinician")
        )
        assert status == 201
    status, read = await api.post(
        f"/conversations/{conv['id']}/read",
        {"up_to_message_id": sent["message"]["id"]},
        token=cast.tok("client"),
    )
    assert status == 200 and read["unread_total"] == 0
    status, _ = await api.get(f"/conversations/{conv['id']}/messages", token=cast.tok("client"))
    assert status == 200


async def test_no_session_state_is_left_on_pooled_connections(api: Api, cast: Cast) -> None:
    pool = _pool()
    await _traffic(api, cast)
    held = [await pool.acquire() for _ in range(pool.get_size())]
    try:
        for conn in held:
            assert not conn.is_in_transaction()
            # What RESET ALL would change (asyncpg's own type introspection sets `jit` and puts it back).
            changed = await conn.fetch(
                "SELECT name FROM pg_settings WHERE source = 'session' AND setting IS DISTINCT FROM reset_val"
            )
            assert [r["name"] for r in changed] == []
            assert await conn.fetch("SELECT pg_listening_channels()") == []
            locks = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
            assert locks == 0
            assert await conn.fetchval("SELECT count(*) FROM pg_cursors WHERE name <> ''") == 0
    finally:
        for conn in held:
            await pool.release(conn)


async def test_a_transaction_left_open_is_rolled_back_on_release(api: Api, cast: Cast) -> None:
    pool = _pool()
    await _traffic(api, cast)
    before = await pool.fetchval("SELECT count(*) FROM message")
    conn = await pool.acquire()
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    await conn.execute("BEGIN")
    await conn.execute("DELETE FROM message")
    await pool.release(conn)  # as a cancelled request would leave it
    again = [await pool.acquire() for _ in range(pool.get_size())]
    try:
        same = [c for c in again if c.get_server_pid() == pid]
        for c in same:
            assert not c.is_in_transaction()
        assert await again[0].fetchval("SELECT count(*) FROM message") == before > 0
    finally:
        for c in again:
            await pool.release(c)
    status, convs = await api.get("/conversations", token=cast.tok("client"))
    assert status == 200 and convs
