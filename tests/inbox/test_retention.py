"""Retention (issue 18): old outbox history, finished webhook deliveries and long-ended tokens and links are
pruned by the dispatcher in small batches; recent and pending rows stay; messages and the audit log are
never pruned. On SQLite and PostgreSQL, with the FakeClock."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from gateway.config import ConfigError, load_config
from gateway.dispatcher import Dispatcher, JobOutcome
from gateway.keys import CTX
from inbox import accounts, audit, links, outbox, retention
from inbox.models import (
    AuditEvent,
    AuthToken,
    Device,
    LinkToken,
    Message,
    OutboxJob,
    Participant,
    Webhook,
    WebhookDelivery,
)
from tests.inbox.cli_helper import run_cli

DAY = 86400
_DELIVERY_IDS = itertools.count(1)


async def settle(ctx, kind, n, outcome):
    """`n` outbox rows of `kind`, worked by a dispatcher to `outcome` (so finished_at is set as in life)."""
    jobs = [await outbox.enqueue(ctx, kind) for _ in range(n)]
    d = Dispatcher(ctx, batch_size=1000)
    d.register(kind, lambda batch: _answer(batch, outcome))
    await d.drain()
    return [j.id for j in jobs]


async def _answer(batch, outcome):
    return {j.id: outcome for j in batch}


async def delivery(ctx, hook, status, n=1):
    now = ctx.clock.now()
    made = []
    for _ in range(n):
        row = await WebhookDelivery.create(
            webhook_id=hook.id,
            delivery_id=f"d-{next(_DELIVERY_IDS)}",
            event="message.created",
            payload={"ids": 1},
            status=status,
            created_at=now,
            delivered_at=now if status == "delivered" else None,
        )
        made.append(row.id)
    return made


async def until_done(policy, clock, *, most=50):
    """Call prune_once until nothing is left; every call's counts, in order."""
    calls = []
    for _ in range(most):
        removed = await retention.prune_once(policy, clock.now())
        calls.append(removed)
        if not any(removed.values()):
            return calls
    raise AssertionError(f"still pruning after {most} calls: {calls[-1]}")


async def ids(model, **filters):
    return set(await model.filter(**filters).values_list("id", flat=True))


async def test_old_history_goes_in_batches_while_recent_and_pending_rows_messages_and_audit_stay(
    client, api, cast, clock
):
    ctx = client.server.app[CTX]
    # Real traffic first: messages (and the pending outbox rows they set in motion) and audit rows.
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")]}, token=cast.tok("clinician")
    )
    assert status == 201, conv
    for i in range(3):
        status, _ = await api.post(
            f"/conversations/{conv['id']}/messages", {"body": f"note {i}"}, token=cast.tok("clinician")
        )
        assert status == 201
    messages = await Message.all().count()
    audit_rows = await AuditEvent.all().count()
    assert messages == 3 and audit_rows > 0
    message_jobs = await ids(OutboxJob, message_id__isnull=False)
    assert message_jobs and await OutboxJob.filter(id__in=message_jobs, status="pending").count() == len(
        message_jobs
    )

    # Day 0: history that will be old.
    old_done = await settle(ctx, "test", 70, JobOutcome.done())
    old_failed = await settle(ctx, "test2", 30, JobOutcome.failed("receiver gone"))
    old_skipped = await settle(ctx, "test3", 20, JobOutcome.skipped("moot"))
    old_pending = (await outbox.enqueue(ctx, "nobody_handles_this")).id  # never worked: stays pending
    hook = await Webhook.create(
        practice_id=(await Participant.get(id=cast.id("owner"))).practice_id,
        url="https://hooks.example/in",
        events=["message.created"],
        secret="",
        created_at=clock.now(),
    )
    old_deliveries = await delivery(ctx, hook, "delivered", 60) + await delivery(ctx, hook, "failed", 5)
    old_pending_delivery = (await delivery(ctx, hook, "pending"))[0]
    clinician = await Participant.get(id=cast.id("clinician"))
    _, revoked_session = await accounts.issue_token(ctx, clinician, "session")
    await AuthToken.filter(id=revoked_session.id).update(revoked_at=clock.now())
    revoked_device = await Device.create(
        participant_id=clinician.id, platform="apns", token="a" * 64, app="practice", alerts={},
        auth_token_id=revoked_session.id, created_at=clock.now(), practice_id=clinician.practice_id,
    )  # fmt: skip
    client_person = await Participant.get(id=cast.id("client"))
    await links.issue_notify_link(ctx, client_person, conv["id"])
    old_links = await ids(LinkToken)
    old_app_tokens = await ids(AuthToken, kind="app")  # the cast's: they expire after the session TTL
    api_keys = await ids(AuthToken, kind="api_key")  # never expire, not revoked: kept however old
    assert old_links and old_app_tokens and api_keys and old_deliveries

    # Day 31: recent history beside it.
    clock.advance(31 * DAY)
    recent_done = await settle(ctx, "test", 5, JobOutcome.done())
    recent_delivery = (await delivery(ctx, hook, "delivered"))[0]
    _, fresh_session = await accounts.issue_token(ctx, clinician, "session")
    _, just_revoked = await accounts.issue_token(ctx, clinician, "session")
    await AuthToken.filter(id=just_revoked.id).update(revoked_at=clock.now())
    kept_device = await Device.create(
        participant_id=clinician.id, platform="apns", token="b" * 64, app="practice", alerts={},
        auth_token_id=just_revoked.id, created_at=clock.now(), practice_id=clinician.practice_id,
    )  # fmt: skip
    await links.issue_notify_link(ctx, client_person, conv["id"])
    fresh_links = await ids(LinkToken) - old_links

    policy = retention.Policy(batch=50)
    calls = await until_done(policy, clock)
    # 120 finished outbox rows in batches of 50; 65 finished deliveries too: never more than 50 at a time.
    assert [c["outbox"] for c in calls] == [50, 50, 20, 0]
    assert [c["webhook_deliveries"] for c in calls] == [50, 15, 0, 0]
    assert all(n <= 50 for c in calls for n in c.values())

    left = await ids(OutboxJob)
    assert not left & set(old_done + old_failed + old_skipped)
    assert set(recent_done) <= left and old_pending in left and message_jobs <= left
    assert await ids(WebhookDelivery) == {old_pending_delivery, recent_delivery}
    tokens = await ids(AuthToken)
    assert not tokens & (old_app_tokens | {revoked_session.id})
    assert api_keys | {fresh_session.id, just_revoked.id} <= tokens
    # The revoked session's device went with it; the device of the recently revoked one is still there
    # (and still kept from pushes by that revocation).
    assert await ids(Device) == {kept_device.id} and revoked_device.id not in await ids(Device)
    assert await ids(LinkToken) == fresh_links
    # Records are never pruned.
    assert await Message.all().count() == messages
    assert await AuditEvent.all().count() == audit_rows
    assert all(r.ok for r in await audit.verify(ctx))

    # A year on, with everything ended long ago: still not a message or an audit row less.
    clock.advance(365 * DAY)
    await until_done(policy, clock)
    assert await Message.all().count() == messages and await AuditEvent.all().count() == audit_rows
    assert old_pending in await ids(OutboxJob) and message_jobs <= await ids(OutboxJob)
    assert await ids(WebhookDelivery) == {old_pending_delivery}
    assert await ids(AuthToken) == api_keys


async def test_the_dispatcher_prunes_by_itself_one_batch_at_a_time(client, clock):
    ctx = client.server.app[CTX]
    old = await settle(ctx, "test", 25, JobOutcome.done())
    clock.advance(30 * DAY + 1)
    recent = await settle(ctx, "test", 3, JobOutcome.done())
    d = Dispatcher(ctx, idle_s=0.01, retention=retention.Policy(batch=10), prune_every_s=0.02)
    d._next_prune = 0.0
    d.start()
    try:
        deadline = time.monotonic() + 10
        while await OutboxJob.filter(id__in=old).exists() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    finally:
        await d.stop()
    assert not await OutboxJob.filter(id__in=old).exists()
    assert await ids(OutboxJob) == set(recent)


async def test_without_a_policy_nothing_is_pruned(client, clock):
    ctx = client.server.app[CTX]
    old = await settle(ctx, "test", 5, JobOutcome.done())
    clock.advance(400 * DAY)
    assert await Dispatcher(ctx).prune() == {}
    assert await ids(OutboxJob) == set(old)


# The column each prune question ranges over: the index must answer that range, not only a status.
RANGE_COLUMN = {
    "outbox": "finished_at",
    "webhook_deliveries": "created_at",
    "expired_tokens": "expires_at",
    "revoked_tokens": "revoked_at",
    "links": "expires_at",
    "devices_of_tokens": "auth_token_id",
}


async def test_an_index_serves_every_prune_query(client, clock):
    queries = dict(retention.candidates(retention.Policy(), clock.now()))
    queries["devices_of_tokens"] = Device.filter(auth_token_id__in=[1, 2, 3]).values_list("id", flat=True)
    assert set(queries) == set(RANGE_COLUMN)
    conn = Tortoise.get_connection("default")
    for kind, query in queries.items():
        sql = query.sql(params_inline=True)
        column = RANGE_COLUMN[kind]
        if conn.capabilities.dialect == "postgres":
            async with in_transaction() as tx:
                # The tables are small here, so the planner would rightly scan them: forbid that, and the
                # plan shows whether an index can answer at all.
                await tx.execute_script("SET LOCAL enable_seqscan = off")
                _, rows = await tx.execute_query("EXPLAIN " + sql)
            plan = "\n".join(str(next(iter(r.values()))) for r in rows)
            assert "Seq Scan" not in plan, (kind, plan)
            cond = [line for line in plan.splitlines() if "Index Cond" in line]
            assert cond and column in cond[0], (kind, plan)
        else:
            _, rows = await conn.execute_query("EXPLAIN QUERY PLAN " + sql)
            plan = "\n".join(str(r["detail"]) for r in rows)
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (kind, plan)
            assert f"{column}<?" in plan or f"{column}=?" in plan, (kind, plan)


def test_retention_settings_have_defaults_and_bounds(tmp_path: Path):
    base = {"SECUREMSG_VAR_DIR": str(tmp_path)}
    config = load_config(base)
    assert (
        config.retention_outbox_days,
        config.retention_webhook_deliveries_days,
        config.retention_tokens_days,
    ) == (30, 30, 7)
    set_ = load_config(
        base
        | {
            "SECUREMSG_RETENTION_OUTBOX_DAYS": "90",
            "SECUREMSG_RETENTION_WEBHOOK_DELIVERIES_DAYS": "14",
            "SECUREMSG_RETENTION_TOKENS_DAYS": "1",
        }
    )
    assert (set_.retention_outbox_days, set_.retention_webhook_deliveries_days) == (90, 14)
    assert set_.retention_tokens_days == 1
    for name, bad in [
        ("SECUREMSG_RETENTION_OUTBOX_DAYS", "1"),  # the dispatcher reads a day of history back
        ("SECUREMSG_RETENTION_OUTBOX_DAYS", "3651"),
        ("SECUREMSG_RETENTION_WEBHOOK_DELIVERIES_DAYS", "0"),
        ("SECUREMSG_RETENTION_TOKENS_DAYS", "-3"),
        ("SECUREMSG_RETENTION_TOKENS_DAYS", "a week"),
    ]:
        with pytest.raises(ConfigError, match=name):
            load_config(base | {name: bad})


async def test_a_bad_retention_setting_stops_the_start_with_one_line(sqlite_url, tmp_path):
    code, out, err = await run_cli(
        sqlite_url, tmp_path / "var", "migrate", env={"SECUREMSG_RETENTION_TOKENS_DAYS": "0"}
    )
    assert code == 2 and out == ""
    assert err.strip() == "securemsg: SECUREMSG_RETENTION_TOKENS_DAYS must be between 1 and 3650, not 0"
