"""The audit log's hash chain (R24) on SQLite and PostgreSQL: linking, concurrent writers, tampering, and
`securemsg audit verify` run as a real subprocess against the test database."""

from __future__ import annotations

import asyncio
import hashlib
import json

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
    # The hash is SHA-256 over the previous hash and the canonical JSON of the row's own fields.
    first = stored[0]
    fields = {
        "practice_id": 1,
        "seq": 1,
        "at": "2026-01-05T09:00:00.000000+00:00",
        "actor_id": None,
        "actor_kind": "system",
        "action": "test.event",
        "target_type": "thing",
        "target_id": "0",
        "detail": {"n": 0},
        "ip": "127.0.0.1",
    }
    expected = hashlib.sha256(
        ("0" * 64).encode() + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert first.hash == expected == rows[0].hash
    # Chains are per practice.
    other = await add_rows(ctx, 2, 1)
    assert other[0].seq == 1 and other[0].prev_hash == "0" * 64
    reports = await audit.verify()
    assert [(r.practice_id, r.rows, r.ok) for r in reports] == [(1, 4, True), (2, 1, True)]
    assert reports[0].head == stored[-1].hash


async def test_r24_concurrent_writers_keep_one_unbroken_chain(client):
    ctx = client.server.app[CTX]
    written = await asyncio.gather(
        *[audit.record(ctx, 7, audit.SYSTEM, "test.concurrent", "n", i) for i in range(40)]
    )
    assert sorted(r.seq for r in written) == list(range(1, 41))
    (report,) = await audit.verify(7)
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
    (report,) = await audit.verify(4)
    assert not report.ok and report.bad_seq == 3 and report.bad_row_id == rows[2].id
    assert "prev_hash" in (report.problem or "")

    rows = await add_rows(ctx, 5, 5)
    await AuditEvent.filter(id=rows[2].id).delete()
    (report,) = await audit.verify(5)
    assert not report.ok and report.bad_seq == 4 and "row seq 3 is missing" in (report.problem or "")


async def test_r24_verify_of_an_empty_log_passes(client, db_url, tmp_path):
    code, out, _ = await run_cli(db_url, tmp_path / "var", "audit", "verify")
    assert code == 0 and "0 rows verified in 0 practice(s)" in out
    code, _, err = await run_cli(db_url, tmp_path / "var", "audit", "verify", "--practice", "x")
    assert code == 2 and "invalid int value" in err
