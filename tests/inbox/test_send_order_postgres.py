"""PostgreSQL, several gateways: sends into one conversation commit in the order of their message ids, so
a send that had to wait for another can never set the conversation's last message back to an older one."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import Api, Cast

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_url", ["postgres"], indirect=True)]


async def waiting_for_a_lock(pg: asyncpg.Connection) -> bool:
    return bool(
        await pg.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()"
        )
    )


async def test_a_send_that_waits_for_another_gateways_send_comes_after_it(
    api: Api, cast: Cast, db_url: str
) -> None:
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")]}, token=cast.tok("clinician")
    )
    assert status == 201, conv
    conv_id = conv["id"]
    other = await asyncpg.connect(db_url.replace("postgres://", "postgresql://", 1))
    try:
        # Another gateway is in the middle of a send into this conversation: it holds the conversation's row.
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT id FROM conversation WHERE id = $1 FOR UPDATE", conv_id)
        ours = asyncio.create_task(
            api.post(f"/conversations/{conv_id}/messages", {"body": "second"}, token=cast.tok("client"))
        )
        for _ in range(200):
            if await waiting_for_a_lock(other):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the send did not wait for the conversation")
        first_id = await other.fetchval(
            "INSERT INTO message (conversation_id, sender_id, body_cipher, created_at) "
            "VALUES ($1, $2, $3, now()) RETURNING id",
            conv_id,
            cast.id("clinician"),
            b"not read by this test",
        )
        await other.execute(
            "UPDATE conversation SET last_message_id = $1, last_message_at = now() WHERE id = $2",
            first_id,
            conv_id,
        )
        await tx.commit()
        status, sent = await asyncio.wait_for(ours, timeout=10)
        assert status == 201, sent
        assert sent["message"]["id"] > first_id  # committed after it, so numbered after it
        last = await other.fetchval("SELECT last_message_id FROM conversation WHERE id = $1", conv_id)
        assert (
            last
            == sent["message"]["id"]
            == await other.fetchval("SELECT max(id) FROM message WHERE conversation_id = $1", conv_id)
        )
    finally:
        await other.close()
