"""The audit log's hash chain (R24) on SQLite and PostgreSQL: linking, concurrent writers, tampering, and
`securemsg audit verify` run as a real subprocess against the test database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime

from tortoise import Tortoise
from tortoise.migrations.api import migrate as tortoise_migrate
from tortoise.transactions import in_transaction

from gateway.keys import CTX
from inbox import audit
from inbox.models import AuditEvent
from tests.inbox.cli_helper import run_cli


async def add_rows(ctx, practice_id, n, action="test.event"):
    return [
        await audit.record(ctx, practice_id, audit.SYSTEM, action, "thing", i, {"n": i}, "127.0.0.1")
        for i in range(n)
    ]


async def test_r24_each_row_holds_the_previous_rows_hash(client):
    ctx = client.server.app[CTX]
    rows = await add_rows(ctx, 1, 4)
    stored = list(await AuditEvent.filter(practice_id=1).order_by("seq"))
    assert [r.seq for r in stored] == [1, 2, 3, 4]
    assert stored[0].prev_hash == "0" * 64
    for before, row in zip(stored, stored[1:], strict=False):
        assert row.prev_hash == before.hash
    # Each row has a mac (HMAC-SHA256 under the audit key over the canonical JSON of its fields without seq)
    # and a keyed hash over the previous hash, its seq, its mac and its target_id.
    first = stored[0]
    fields = {
        "practice_id": 1,
        "at": "2026-01-05T09:00:00.000000+00:00",
        "actor_id": None,
        "actor_kind": "system",
        "action": "test.event",
        "target_type": "thing",
        "target_id": "0",
        "detail": {"n": 0},
        "ip": "127.0.0.1",
    }
    key_id, key = ctx.audit_keys[0]
    mac = hmac.new(key, json.dumps(fields, sort_keys=True, separators=(",", ":")).encode(), "sha256")
    assert first.key_id == key_id and first.mac == mac.hexdigest()
    expected = hmac.new(key, f"{'0' * 64}|1|{first.mac}|0".encode(), "sha256")
    assert first.hash == expected.hexdigest() == rows[0].hash
    # Chains are per practice.
    other = await add_rows(ctx, 2, 1)
    assert other[0].seq == 1 and other[0].prev_hash == "0" * 64
    reports = await audit.verify(ctx)
    assert [(r.practice_id, r.rows, r.ok) for r in reports] == [(1, 4, True), (2, 1, True)]
    assert reports[0].head == stored[-1].hash


async def test_r24_concurrent_writers_keep_one_unbroken_chain(client):
    ctx = client.server.app[CTX]
    written = await asyncio.gather(
        *[audit.record(ctx, 7, audit.SYSTEM, "test.concurrent", "n", i) for i in range(40)]
    )
    assert sorted(r.seq for r in written) == list(range(1, 41))
    (report,) = await audit.verify(ctx, 7)
    assert report.ok and report.rows == 40


async def test_r24_details_hold_plain_values_only(client):
    ctx = client.server.app[CTX]
    for bad in ({"f": 1.5}, {"b": b"x"}, {"big": "x" * 5000}):
        try:
            await audit.record(ctx, 1, audit.SYSTEM, "test.bad", detail=bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    assert await AuditEvent.all().count() == 0


async def test_r24_an_edited_row_is_named_by_audit_verify(client, db_url, tmp_path):
    ctx = client.server.app[CTX]
    rows = await add_rows(ctx, 3, 6)
    code, out, err = await run_cli(db_url, tmp_path / "var", "audit", "verify")
    assert code == 0, err
    assert "audit log intact: 6 rows verified in 1 practice(s)" in out
    assert f"head {rows[-1].hash}" in out

    # Someone with database access changes what row 4 says.
    target = rows[3]
    await AuditEvent.filter(id=target.id).update(detail={"n": 999})
    code, out, err = await run_cli(db_url, tmp_path / "var", "audit", "verify", "--practice", "3")
    assert code == 1, (out, err)
    assert f"first bad row is id {target.id} (seq 4)" in out
    assert "does not match its contents" in out
    assert "the 3 rows before it verified" in out
    assert "BROKEN" in out


async def test_r24_a_rehashed_edit_or_a_deleted_row_still_shows(client):
    ctx = client.server.app[CTX]
    rows = await add_rows(ctx, 4, 5)
    # An edit with the row's own hash recomputed: the next row no longer follows it.
    row = await AuditEvent.get(id=rows[1].id)
    row.action = "something.else"
    row.hash = audit.chain_hash(row.prev_hash, audit.row_fields(row))
    await row.save()
    (report,) = await audit.verify(ctx, 4)
    # Its mac no longer holds, so the edited row itself is named.
    assert not report.ok and report.bad_seq == 2 and report.bad_row_id == rows[1].id
    assert "does not match its contents" in (report.problem or "")

    rows = await add_rows(ctx, 5, 5)
    await AuditEvent.filter(id=rows[2].id).delete()
    (report,) = await audit.verify(ctx, 5)
    assert not report.ok and report.bad_seq == 4 and "row seq 3 is missing" in (report.problem or "")


async def test_r24_verify_of_an_empty_log_passes(client, db_url, tmp_path):
    code, out, _ = await run_cli(db_url, tmp_path / "var", "audit", "verify")
    assert code == 0 and "0 rows verified in 0 practice(s)" in out
    code, _, err = await run_cli(db_url, tmp_path / "var", "audit", "verify", "--practice", "x")
    assert code == 2 and "invalid int value" in err


# --- the keyed chain -------------------------------------------------------------------------------------


def unkeyed_rewrite(rows, start):
    """What someone with write access to the database, but not the audit key, can do: recompute every hash
    from `start` on with the plain SHA-256 chain (the key is not in the database)."""
    prev = rows[start - 1].hash if start else "0" * 64
    for row in rows[start:]:
        row.prev_hash = prev
        row.hash = hashlib.sha256(prev.encode() + audit.canonical(audit.row_fields(row))).hexdigest()
        prev = row.hash


async def test_r24_a_chain_rewritten_by_someone_with_database_access_is_named(client, db_url, tmp_path):
    ctx = client.server.app[CTX]
    rows = await add_rows(ctx, 3, 6)
    for row in rows:
        await row.refresh_from_db()
    # The attacker changes row 3 and recomputes the chain from there on, as the old unkeyed scheme allowed.
    rows[2].detail = {"n": 999}
    unkeyed_rewrite(rows, 2)
    for row in rows[2:]:
        await AuditEvent.filter(id=row.id).update(detail=row.detail, prev_hash=row.prev_hash, hash=row.hash)
    code, out, err = await run_cli(db_url, tmp_path / "var", "audit", "verify", "--practice", "3")
    assert code == 1, (out, err)
    assert f"first bad row is id {rows[2].id} (seq 3)" in out
    assert "the 2 rows before it verified" in out and "BROKEN" in out

    # Going further: the keyed rows from seq 3 on are turned into rows of the old unkeyed kind (no key id,
    # no mac), so that nothing would be checked under the key. An unkeyed row after a keyed one is a rewrite.
    for row in rows[2:]:
        row.key_id, row.mac = None, None
    unkeyed_rewrite(rows, 2)
    for row in rows[2:]:
        await AuditEvent.filter(id=row.id).update(
            key_id=None, mac=None, prev_hash=row.prev_hash, hash=row.hash
        )
    code, out, err = await run_cli(db_url, tmp_path / "var", "audit", "verify")
    assert code == 1, (out, err)
    assert f"first bad row is id {rows[2].id} (seq 3)" in out
    assert "not keyed, yet keyed rows come before it" in out


async def test_r24_verify_needs_the_audit_key_from_the_var_directory(client, db_url, tmp_path):
    """The key is in var/audit.key (or SECUREMSG_AUDIT_KEY), never in the database."""
    ctx = client.server.app[CTX]
    key_file = tmp_path / "var" / "audit.key"
    assert key_file.is_file() and key_file.stat().st_mode & 0o777 == 0o600
    assert (
        key_file.read_text().strip()
        == f"{ctx.audit_keys[0][0]}:" + base64.urlsafe_b64encode(ctx.audit_keys[0][1]).decode()
    )
    await add_rows(ctx, 1, 3)
    code, out, _ = await run_cli(db_url, tmp_path / "var", "audit", "verify")
    assert code == 0 and "3 rows verified" in out
    # Another key (a server set up with a different SECUREMSG_AUDIT_KEY) cannot vouch for these rows.
    other = "a1:" + base64.urlsafe_b64encode(b"x" * 32).decode()
    code, out, _ = await run_cli(
        db_url, tmp_path / "var", "audit", "verify", env={"SECUREMSG_AUDIT_KEY": other}
    )
    assert code == 1 and "BROKEN" in out and "does not match its contents" in out


async def test_r24_rows_from_before_the_keyed_log_still_verify(client, db_url, tmp_path):
    """An upgraded server: rows written by the unkeyed scheme (no key id) keep verifying, and the next row
    seals them under the key."""
    ctx = client.server.app[CTX]
    prev = "0" * 64
    old_rows = []
    for seq in (1, 2, 3):
        row = AuditEvent(
            practice_id=9, seq=seq, at=ctx.clock.now(), actor_id=None, actor_kind="system",
            action="old.event", target_type=None, target_id=str(seq), detail={"n": seq}, ip=None,
            prev_hash=prev, hash="",
        )  # fmt: skip
        row.hash = audit.chain_hash(prev, audit.row_fields(row))
        await row.save()
        old_rows.append(row)
        prev = row.hash
    code, out, _ = await run_cli(db_url, tmp_path / "var", "audit", "verify")
    assert code == 0 and "practice 9: 3 rows verified" in out
    assert "every row is from before the keyed audit log" in out

    new = await audit.record(ctx, 9, audit.SYSTEM, "new.event")
    assert new.seq == 4 and new.prev_hash == old_rows[-1].hash and new.key_id == ctx.audit_keys[0][0]
    code, out, _ = await run_cli(db_url, tmp_path / "var", "audit", "verify")
    assert code == 0 and "practice 9: 4 rows verified" in out and "before the keyed" not in out

    # An old row changed (and its unkeyed chain recomputed up to the keyed row) still shows.
    old_rows[1].detail = {"n": 20}
    unkeyed_rewrite(old_rows, 1)
    for row in old_rows[1:]:
        await AuditEvent.filter(id=row.id).update(detail=row.detail, prev_hash=row.prev_hash, hash=row.hash)
    (report,) = await audit.verify(ctx, 9)
    assert not report.ok and report.bad_seq == 4 and report.bad_row_id == new.id


async def test_r24_a_row_slipped_into_the_table_never_joins_the_chain(client, db_url, tmp_path):
    ctx = client.server.app[CTX]
    await add_rows(ctx, 2, 2)
    forged = audit.new_row(ctx, 2, audit.SYSTEM, "export.download", "export", 1)
    forged.mac = "0" * 64  # no key, no mac that holds
    await forged.save()
    assert await audit.seal(ctx, 2) == 0
    await add_rows(ctx, 2, 1)  # later rows are sealed past it
    forged_now = await AuditEvent.get(id=forged.id)
    assert forged_now.seq is None
    assert [r.seq for r in await AuditEvent.filter(practice_id=2, seq__isnull=False).order_by("seq")] == [
        1,
        2,
        3,
    ]
    code, out, _ = await run_cli(db_url, tmp_path / "var", "audit", "verify")
    assert code == 1, out
    assert f"bad row id {forged.id}: it is not in the chain" in out
    assert "the 3 rows of the chain verified" in out


async def test_r24_rows_written_inside_a_transaction_are_sealed_after_its_commit(client):
    ctx = client.server.app[CTX]
    async with in_transaction():
        row = await audit.record(ctx, 6, audit.SYSTEM, "test.in_transaction", "thing", 1)
        assert row.seq is None  # not yet: the chain is not held for the length of someone's transaction
    for _ in range(100):
        if (await AuditEvent.get(id=row.id)).seq is not None:
            break
        await asyncio.sleep(0.05)
    assert (await AuditEvent.get(id=row.id)).seq == 1
    (report,) = await audit.verify(ctx, 6)
    assert report.ok and report.rows == 1

    # A transaction that rolls back takes its audit row with it.
    with contextlib.suppress(RuntimeError):
        async with in_transaction():
            await audit.record(ctx, 6, audit.SYSTEM, "test.rolled_back")
            raise RuntimeError("the change failed")
    assert not await AuditEvent.filter(action="test.rolled_back").exists()


async def test_r24_an_upgraded_database_keeps_its_chain_verifying(db_url, tmp_path):
    """A database written by the unkeyed version (schema 0003), then `securemsg migrate`: its rows verify,
    and the rows written from then on are keyed and chained onto them."""
    from gateway.app import make_context
    from inbox import db
    from tests.conftest import _pg_exec, _with_db, make_config

    if db_url.startswith("sqlite"):
        url = f"sqlite://{tmp_path}/old.sqlite3"
    else:
        url = _with_db(db_url, f"securemsg_old_{uuid.uuid4().hex[:12]}")
        await _pg_exec(db_url, f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
    try:
        await tortoise_migrate(config=db.tortoise_config(url), target="models.0003_outbox_history_indexes")
        await Tortoise.close_connections()
        at = datetime(2025, 12, 1, 8, 30, tzinfo=UTC)
        prev, rows = "0" * 64, []
        for seq in (1, 2, 3):
            fields = {
                "practice_id": 1, "seq": seq, "at": audit._utc(at), "actor_id": 7, "actor_kind": "team",
                "action": "transcript.read", "target_type": "client", "target_id": "8",
                "detail": {"messages": seq}, "ip": "10.0.0.1",
            }  # fmt: skip
            digest = audit.chain_hash(prev, fields)
            rows.append((seq, json.dumps(fields["detail"]), prev, digest))
            prev = digest
        sql = (
            "INSERT INTO audit_event (practice_id, seq, at, actor_id, actor_kind, action, target_type, target_id, "
            "detail, ip, prev_hash, hash) VALUES (1, {}, {}, 7, 'team', 'transcript.read', 'client', '8', {}, "
            "'10.0.0.1', {}, {})"
        )
        conn = await db_connection(url)
        for seq, detail, prev_hash, digest in rows:
            await conn.execute_script(
                sql.format(seq, f"'{at.isoformat(' ')}'", f"'{detail}'", f"'{prev_hash}'", f"'{digest}'")
            )
        await Tortoise.close_connections()

        var = tmp_path / "var"
        code, out, err = await run_cli(url, var, "migrate")
        assert code == 0, err
        code, out, err = await run_cli(url, var, "audit", "verify")
        assert code == 0, (out, err)
        assert "practice 1: 3 rows verified" in out and "before the keyed audit log" in out

        await db.connect(url)
        try:
            ctx = make_context(make_config(url, var))
            new = await audit.record(ctx, 1, audit.SYSTEM, "export.download", "export", 1)
            assert new.seq == 4 and new.prev_hash == prev and new.key_id == "a1"
        finally:
            await db.disconnect()
        code, out, err = await run_cli(url, var, "audit", "verify")
        assert code == 0 and "practice 1: 4 rows verified" in out, (out, err)
    finally:
        if not url.startswith("sqlite"):
            await _pg_exec(db_url, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


async def db_connection(url):
    from inbox import db

    await Tortoise.init(config=db.tortoise_config(url))
    return Tortoise.get_connection("default")
