"""`securemsg purge-messages` and `securemsg purge-audit` (issue 18; docs/operations.md, "Purging old
records"), run as real subprocesses against the test database, SQLite and PostgreSQL.

The practice's traffic is made through the API with the test clock set years back, then moved to recent
years; the purge runs with the real clock (today), so "seven years ago" is the real one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.app import make_context
from gateway.keys import CTX
from inbox import accounts, audit, purge
from inbox.clock import FakeClock
from inbox.models import AuditEvent, Conversation, Message, OutboxJob, Participant
from tests.conftest import build_cast
from tests.inbox.cli_helper import run_cli

YEAR = 365 * 86400
OLD = "2019-01-01"  # older than seven years whenever this runs after 2026-01-01


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2018, 6, 1, 9, 0, tzinfo=UTC))


async def fresh_tokens(cast, config, clock) -> None:
    """The cast's app tokens expire with the clock; new ones for the years after."""
    ctx = make_context(config, clock)
    for who, pid in cast.ids.items():
        cast.tokens[who], _ = await accounts.issue_token(ctx, await Participant.get(id=pid), "app")


async def send(api, cast, conv_id, body, who="clinician") -> int:
    status, sent = await api.post(f"/conversations/{conv_id}/messages", {"body": body}, token=cast.tok(who))
    assert status == 201, sent
    return int(sent["message"]["id"])


async def conversation(api, cast, who, with_whom) -> int:
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id(with_whom)]}, token=cast.tok(who)
    )
    assert status in (200, 201), conv
    return int(conv["id"])


async def listed(api, cast, who, conv_id) -> dict:
    status, page = await api.get("/conversations", token=cast.tok(who))
    assert status == 200
    (found,) = [c for c in page["items"] if c["id"] == conv_id]
    return found


def test_the_floor_is_seven_years_to_the_day_and_the_future_is_refused_whatever_is_said() -> None:
    today = date(2026, 12, 6)
    assert purge.floor_date(today) == date(2019, 12, 6)
    assert purge.floor_date(date(2028, 2, 29)) == date(2021, 2, 28)
    assert purge.cutoff_of(date(2019, 12, 6), today, younger_allowed=False) == datetime(
        2019, 12, 6, tzinfo=UTC
    )
    with pytest.raises(purge.PurgeRefused, match="--force-younger-than-7-years"):
        purge.cutoff_of(date(2019, 12, 7), today, younger_allowed=False)
    assert purge.cutoff_of(today, today, younger_allowed=True) == datetime(2026, 12, 6, tzinfo=UTC)
    with pytest.raises(purge.PurgeRefused, match="in the future"):
        purge.cutoff_of(date(2026, 12, 7), today, younger_allowed=True)


async def test_purge_messages_takes_only_what_is_old_in_the_practice_asked_for_and_audits_each_batch(
    client, api, cast, clock, config, db_url, tmp_path
) -> None:
    ctx = client.server.app[CTX]
    practice_id = (await Participant.get(id=cast.id("owner"))).practice_id
    other = await build_cast(api, config, clock, name="Lakeside Therapy")
    # 2018: three messages to the client (one removed by its sender), two to the second client, and the
    # other practice's own.
    with_client = await conversation(api, cast, "clinician", "client")
    old = [await send(api, cast, with_client, f"old note {i}") for i in range(3)]
    status, _ = await api.delete(f"/messages/{old[1]}", token=cast.tok("clinician"))
    assert status == 200
    only_old = await conversation(api, cast, "clinician", "client2")
    old += [await send(api, cast, only_old, f"old to client2 {i}") for i in range(2)]
    elsewhere = await conversation(api, other, "clinician", "client")
    kept_elsewhere = [await send(api, other, elsewhere, "the other practice's")]
    assert (await listed(api, cast, "client", with_client))["unread_count"] == 2
    old_jobs = set(await OutboxJob.filter(message_id__in=old).values_list("id", flat=True))
    waiting = set(await OutboxJob.filter(id__in=old_jobs, status="pending").values_list("id", flat=True))
    assert waiting and old_jobs - waiting  # the removed message's were settled by its removal (R14)
    # 2024: a newer message in the first conversation.
    clock.advance(6 * YEAR)
    await fresh_tokens(cast, config, clock)
    new = await send(api, cast, with_client, "this year's note")
    assert (await listed(api, cast, "client", with_client))["unread_count"] == 3
    var = tmp_path / "var"
    args = ("purge-messages", "--before", OLD, "--practice", str(practice_id))

    # A dry run counts and changes nothing.
    code, out, err = await run_cli(db_url, var, *args, "--dry-run")
    assert code == 0, err
    assert (
        f"practice {practice_id} (Riverbend Counseling): 5 messages sent before {OLD} in 2 conversations"
        in out
    )
    assert "dry run: 5 messages would be purged; nothing was changed" in out
    assert await Message.filter(id__in=old).count() == 5
    # Without --yes, the practice's name must be typed: anything else (or nothing) purges nothing.
    for typed in ("", "Lakeside Therapy\n", "yes\n"):
        code, out, err = await run_cli(db_url, var, *args, stdin=typed)
        assert code == 2 and "securemsg: not confirmed; nothing was purged" in err, (out, err)
        assert "type the practice's name (Riverbend Counseling)" in err
    assert await Message.filter(id__in=old).count() == 5

    code, out, err = await run_cli(db_url, var, *args, "--batch-size", "2", stdin="Riverbend Counseling\n")
    assert code == 0, err
    assert f"practice {practice_id}: 5 messages purged" in out
    assert "in 3 batches" in out
    assert await Message.filter(id__in=old).count() == 0
    assert await Message.filter(id__in=[new, *kept_elsewhere]).count() == 2
    # What people see: the newer message alone is unread and is the conversation's last; the conversation
    # whose messages all went is still there, empty, with nothing unread.
    first = await listed(api, cast, "client", with_client)
    assert first["unread_count"] == 1 and first["last_message"]["id"] == new
    emptied = await listed(api, cast, "client2", only_old)
    assert emptied["unread_count"] == 0 and emptied["last_message"] is None
    status, page = await api.get(f"/conversations/{only_old}/messages", token=cast.tok("client2"))
    assert status == 200 and page["items"] == []
    status, page = await api.get(f"/conversations/{with_client}/messages", token=cast.tok("client"))
    assert [m["id"] for m in page["items"]] == [new]
    assert (await Conversation.get(id=only_old)).last_message_id is None
    # Their notifications still waiting are settled as moot, their finished ones are gone; the newer
    # message's wait as before.
    assert set(await OutboxJob.filter(id__in=old_jobs).values_list("id", "status", "last_error")) == {
        (j, "skipped", "message purged") for j in waiting
    }
    assert await OutboxJob.filter(message_id=new, status="pending").exists()
    # One audit row per batch, by the operator, in the practice's chain, which still verifies.
    rows = list(await AuditEvent.filter(practice_id=practice_id, action="messages.purged").order_by("id"))
    assert [r.detail["messages"] for r in rows] == [2, 2, 1]
    assert {(r.actor_kind, r.actor_id, r.detail["before"]) for r in rows} == {("operator", None, OLD)}
    assert len({r.detail["run"] for r in rows}) == 1 and all(r.seq for r in rows)
    assert await AuditEvent.filter(actor_kind="operator").count() == 3  # the dry and refused runs wrote none
    code, out, err = await run_cli(db_url, var, "audit", "verify")
    assert code == 0 and "audit log intact" in out, (out, err)
    assert all(r.ok for r in await audit.verify(ctx))

    # Nothing older is left here: a second run finds nothing and writes nothing.
    code, out, _ = await run_cli(db_url, var, *args, "--yes")
    assert code == 0 and f"no message was sent before {OLD}; nothing to purge" in out
    assert await AuditEvent.filter(action="messages.purged").count() == 3


async def test_purge_messages_refuses_a_young_or_bad_cutoff_and_an_unknown_practice(
    client, api, cast, clock, db_url, tmp_path
) -> None:
    conv = await conversation(api, cast, "clinician", "client")
    await send(api, cast, conv, "kept")
    var = tmp_path / "var"
    young = date.today().replace(day=1).isoformat()
    code, out, err = await run_cli(db_url, var, "purge-messages", "--before", young, "--yes")
    assert code == 2 and out == ""
    assert "younger than 7 years" in err and "--force-younger-than-7-years" in err
    code, _, err = await run_cli(db_url, var, "purge-messages", "--before", "2100-01-01", "--yes",
                                 "--force-younger-than-7-years")  # fmt: skip
    assert code == 2 and "is in the future" in err
    for bad in ("2019-13-01", "01/01/2019", "2019-1-1"):
        code, _, err = await run_cli(db_url, var, "purge-messages", "--before", bad, "--yes")
        assert code == 2 and "--before" in err, (bad, err)
    code, _, err = await run_cli(db_url, var, "purge-messages", "--yes")
    assert code == 2 and "--before" in err
    code, _, err = await run_cli(db_url, var, "purge-messages", "--before", OLD, "--practice", "999", "--yes")
    assert code == 2 and "there is no practice 999" in err
    assert await Message.all().count() == 1
    assert not await AuditEvent.filter(actor_kind="operator").exists()


async def test_purge_audit_leaves_an_anchor_that_lets_the_chain_start_later_and_nothing_more(
    client, api, cast, clock, config, db_url, tmp_path
) -> None:
    ctx = client.server.app[CTX]
    practice_id = (await Participant.get(id=cast.id("owner"))).practice_id
    conv = await conversation(api, cast, "clinician", "client")
    await send(api, cast, conv, "old")
    await audit.seal(ctx, practice_id)
    old_rows = await AuditEvent.filter(practice_id=practice_id).count()
    clock.advance(6 * YEAR)
    await fresh_tokens(cast, config, clock)
    await send(api, cast, conv, "newer")
    await audit.seal(ctx, practice_id)
    total = await AuditEvent.filter(practice_id=practice_id).count()
    assert 0 < old_rows < total
    var = tmp_path / "var"
    args = ("purge-audit", "--before", OLD, "--practice", str(practice_id))

    code, out, err = await run_cli(db_url, var, *args, "--dry-run")
    assert code == 0, err
    assert f"{old_rows} audit rows before {OLD} (seq 1 to {old_rows}); seq {old_rows + 1} on stay" in out
    assert await AuditEvent.filter(practice_id=practice_id).count() == total

    code, out, err = await run_cli(db_url, var, *args, "--batch-size", "3", stdin="Riverbend Counseling\n")
    assert code == 0, (out, err)
    assert f"{old_rows} audit rows purged (seq 1 to {old_rows})" in out and "the chain verifies" in out
    left = list(await AuditEvent.filter(practice_id=practice_id).order_by("seq"))
    assert left[0].seq == old_rows + 1 and len(left) == total - old_rows + 1  # + the anchor
    anchor = left[-1]
    assert (anchor.action, anchor.actor_kind) == ("audit.purged", "operator")
    assert anchor.detail["through_seq"] == old_rows and anchor.detail["rows"] == old_rows
    assert anchor.detail["before"] == OLD
    code, out, err = await run_cli(db_url, var, "audit", "verify", "--practice", str(practice_id))
    assert code == 0 and "audit log intact" in out, (out, err)
    assert f"purged through seq {old_rows}" in out
    (report,) = await audit.verify(ctx, practice_id)
    assert report.ok and report.purged_through == old_rows

    # Someone with the database but not the key deletes one row more: the anchor does not cover it.
    await AuditEvent.filter(id=left[0].id).delete()
    code, out, _ = await run_cli(db_url, var, "audit", "verify", "--practice", str(practice_id))
    assert code == 1 and "no purge by an operator covers the rows before it" in out
    # …nor can they make the anchor say more: its keyed mac no longer holds, so it covers nothing.
    detail = dict(anchor.detail, through_seq=old_rows + 1)
    await AuditEvent.filter(id=anchor.id).update(detail=detail)
    (report,) = await audit.verify(ctx, practice_id)
    assert not report.ok and report.bad_seq == old_rows + 2


async def test_purge_audit_refuses_a_chain_that_does_not_verify(
    client, api, cast, clock, config, db_url, tmp_path
) -> None:
    ctx = client.server.app[CTX]
    practice_id = (await Participant.get(id=cast.id("owner"))).practice_id
    await audit.seal(ctx, practice_id)
    clock.advance(6 * YEAR)
    await fresh_tokens(cast, config, clock)
    conv = await conversation(api, cast, "clinician", "client")
    await send(api, cast, conv, "newer")
    await audit.seal(ctx, practice_id)
    total = await AuditEvent.filter(practice_id=practice_id).count()
    second = await AuditEvent.get(practice_id=practice_id, seq=2)
    await AuditEvent.filter(id=second.id).update(detail={"changed": True})
    code, out, err = await run_cli(db_url, tmp_path / "var", "purge-audit", "--before", OLD, "--yes")
    assert code == 1, (out, err)
    assert (
        f"practice {practice_id} (Riverbend Counseling): not purged: its audit chain does not verify" in out
    )
    assert "(row id " in out and "(seq 2): its hash does not match its contents" in out
    assert await AuditEvent.filter(practice_id=practice_id).count() == total
