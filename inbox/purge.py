"""Purging old records, on an operator's decision only (docs/operations.md, "Purging old records").

Messages and the audit log are the practice's records: nothing prunes them by itself (inbox.retention).
Records law asks a practice to keep them for years (HIPAA's documentation rule says six; many states say
longer for clinical records), so these purges refuse a cutoff younger than `FLOOR_YEARS` unless the operator
says otherwise in so many words, and each writes its own audit row in the transaction that deletes.

`purge-messages`: in batches of at most `batch` messages, each in one short transaction that also
- takes the purged messages out of the unread counts of those who had not read them (R15),
- points each conversation whose newest message went at its newest remaining one (the conversation itself
  stays: the same people meet in the same exchange, R11),
- settles the messages' notifications still waiting (skipped: "message purged") and deletes their finished
  outbox history,
- and writes one `messages.purged` audit row per practice in the batch: who ("operator"), the cutoff, how
  many, and the run's id (every batch of one run has the same).
What stays: chart notes (the client's chart, which holds its own copy of what was copied into it, R22),
export files already made (delete them yourself), webhook deliveries (ids only), and the audit rows that
name the messages (ids only; the audit log has its own purge).

`purge-audit`: the chain (inbox.audit) is keyed and every row links to the one before it, so rows can only
go from its start, up to the last row older than the cutoff, and only with a record that says so: an
*anchor* row (`audit.purged`), written into the same chain under the audit key, that names the last purged
row's seq and hash. `audit verify` then accepts a chain that starts after seq 1 only when an anchor covers
the gap, and checks that the row the anchor names (while it is still there) has the hash it recorded. Someone
with write access to the database but not the key can neither forge an anchor nor delete beyond one. A chain
that does not verify is never purged: that would erase the evidence.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from inbox import audit, db
from inbox.context import InboxContext
from inbox.models import Practice
from inbox.store import audit as audit_store
from inbox.store import purge as store

FLOOR_YEARS = 7
BATCH = 500
OPERATOR = audit.Actor(None, "operator")
MESSAGES_PURGED = "messages.purged"
AUDIT_PURGED = audit.PURGED


class PurgeRefused(Exception):
    """A purge that must not run as asked; the message is one line for the operator."""


def floor_date(today: date, years: int = FLOOR_YEARS) -> date:
    """The youngest cutoff allowed without the override: the same day `years` years ago (Feb 29 → 28)."""
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


def cutoff_of(before: date, today: date, *, younger_allowed: bool) -> datetime:
    """Midnight UTC at the start of `before`: what was stored before it goes. A day after today is refused
    whatever is said (it would take what is being written now); one after the floor needs the override."""
    if before > today:
        raise PurgeRefused(f"--before {before.isoformat()} is in the future; nothing was purged")
    floor = floor_date(today)
    if before > floor and not younger_allowed:
        raise PurgeRefused(
            f"--before {before.isoformat()} would purge records younger than {FLOOR_YEARS} years (the "
            f"youngest cutoff allowed is {floor.isoformat()}); records law may require keeping them. "
            f"If you must, add --force-younger-than-{FLOOR_YEARS}-years"
        )
    return datetime.combine(before, time(0), tzinfo=UTC)


def new_run_id() -> str:
    return secrets.token_hex(8)


# --- messages -------------------------------------------------------------------------------------------


@dataclass
class MessageCount:
    practice_id: int
    name: str
    messages: int = 0
    conversations: int = 0
    pending_notifications: int = 0


async def practices(practice_id: int | None) -> list[Practice]:
    return await store.list_practices(practice_id)


async def practice_name(practice_id: int) -> str | None:
    """The practice's name, or None when there is no such practice."""
    practice = await store.get_practice(practice_id)
    return None if practice is None else practice.name


async def practice_names(ids: list[int]) -> dict[int, str]:
    """id → name of those of these practices that exist."""
    return await store.get_practice_names(ids)


async def count_messages(cutoff: datetime, practice_id: int | None) -> list[MessageCount]:
    """What a purge would take, per practice; a dry run reads, never writes."""
    found = {p.id: MessageCount(p.id, p.name) for p in await practices(practice_id)}
    for pid, n, convs in await store.count_old_messages(cutoff, practice_id):
        if pid in found:
            found[pid].messages, found[pid].conversations = int(n), int(convs)
    # The notifications still waiting are few (the live queue), the old messages many: ask from this side.
    pending = await store.list_pending_message_jobs()
    for start in range(0, len(pending), BATCH):
        chunk = pending[start : start + BATCH]
        old = await store.get_old_message_ids(cutoff, practice_id, [m for m, _ in chunk])
        for mid, pid in chunk:
            if mid in old and pid in found:
                found[pid].pending_notifications += 1
    return list(found.values())


@dataclass
class BatchResult:
    messages: Counter[int] = field(default_factory=Counter)  # practice id → messages purged
    last_id: int = 0

    @property
    def total(self) -> int:
        return sum(self.messages.values())


async def purge_messages_batch(
    ctx: InboxContext,
    cutoff: datetime,
    practice_id: int | None,
    *,
    run: str,
    forced: bool,
    after_id: int = 0,
    batch: int = BATCH,
) -> BatchResult:
    """Purge the next `batch` messages older than `cutoff` (oldest ids first, after `after_id`), with what
    hangs on them and one audit row per practice, in one transaction."""
    result = BatchResult(last_id=after_id)
    now = ctx.clock.now()
    async with db.transaction() as conn:
        rows = await store.list_old_messages(conn, cutoff, practice_id, after_id, batch)
        if not rows:
            return result
        ids = [int(r["id"]) for r in rows]
        result.last_id = ids[-1]
        by_conv: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            by_conv.setdefault(int(r["conversation_id"]), []).append(r)
            result.messages[int(r["conversation__practice_id"])] += 1

        # R15: what a member had not read of these no longer waits for them.
        for m in await store.list_members(conn, by_conv):
            read_upto = m.last_read_message_id or 0
            gone_unread = sum(
                1
                for r in by_conv[m.conversation_id]
                if r["id"] > read_upto and r["removed_at"] is None and r["sender_id"] != m.participant_id
            )
            if gone_unread:
                # Relative to the stored count, so a send committing meanwhile is not undone.
                await store.take_unread(conn, m.id, gone_unread)

        # Their finished notifications are history; those still waiting are moot, settled as a removal's are.
        await store.delete_finished_jobs(conn, ids)
        await store.set_pending_jobs_skipped(conn, ids, "message purged", now)
        await store.delete_messages(conn, ids)
        # Each conversation whose newest message went points at its newest remaining one.
        await store.set_newest_messages(conn, by_conv, ids)

        for pid, n in sorted(result.messages.items()):
            await audit.record(
                ctx,
                pid,
                OPERATOR,
                MESSAGES_PURGED,
                detail={
                    "before": cutoff.date().isoformat(),
                    "messages": n,
                    "run": run,
                    "younger_than_floor": forced,
                },
                conn=conn,
            )
    return result


# --- the audit log --------------------------------------------------------------------------------------


@dataclass
class AuditPlan:
    practice_id: int
    name: str
    first_seq: int = 0  # the chain's first row now (0: empty)
    through_seq: int = 0  # the last row the purge takes; nothing when below first_seq
    through_hash: str = ""
    problem: str | None = None  # why this chain is not purged

    @property
    def rows(self) -> int:
        return max(0, self.through_seq - self.first_seq + 1) if self.first_seq else 0


async def plan_audit_purge(ctx: InboxContext, practice_id: int, name: str, cutoff: datetime) -> AuditPlan:
    """Which rows of the practice's chain a purge before `cutoff` takes: from its first row up to the last
    one before the first row at or after the cutoff (a chain loses only its start). The chain is sealed and
    verified first; a broken one is not purged."""
    plan = AuditPlan(practice_id, name)
    (report,) = await audit.verify(ctx, practice_id)
    if not report.ok:
        where = f"row id {report.bad_row_id}" + (f" (seq {report.bad_seq})" if report.bad_seq else "")
        plan.problem = f"its audit chain does not verify ({where}: {report.problem})"
        return plan
    first = await audit_store.get_first_sealed(practice_id)
    if first is None:
        return plan
    plan.first_seq = first.seq or 0
    young = await audit_store.get_first_sealed(practice_id, since=cutoff)
    last = young if young is not None else await audit_store.get_last_sealed(practice_id)
    plan.through_seq = (last.seq or 0) - (young is not None) if last is not None else 0
    if plan.through_seq >= plan.first_seq:
        row = await audit_store.get_sealed(practice_id, plan.through_seq)
        plan.through_hash = (row.hash or "") if row is not None else ""
    return plan


async def purge_audit(
    ctx: InboxContext, plan: AuditPlan, cutoff: datetime, *, run: str, forced: bool, batch: int = BATCH
) -> int:
    """Delete the planned rows, oldest first, `batch` at a time. The anchor row is written in the first
    batch's transaction, so no row goes before the record that lets it go; a run cut short leaves a chain
    that still verifies, and running the purge again finishes it."""
    if plan.rows == 0:
        return 0
    removed = 0
    lo = plan.first_seq
    while lo <= plan.through_seq:
        hi = min(plan.through_seq, lo + batch - 1)
        async with db.transaction() as conn:
            if lo == plan.first_seq:
                await audit.record(
                    ctx,
                    plan.practice_id,
                    OPERATOR,
                    AUDIT_PURGED,
                    "audit_log",
                    None,
                    {
                        "before": cutoff.date().isoformat(),
                        "rows": plan.rows,
                        "from_seq": plan.first_seq,
                        "through_seq": plan.through_seq,
                        "through_hash": plan.through_hash,
                        "run": run,
                        "younger_than_floor": forced,
                    },
                    conn=conn,
                )
            removed += await audit_store.delete_sealed(conn, plan.practice_id, lo, hi)
        if lo == plan.first_seq:
            await audit.seal(ctx, plan.practice_id)  # the anchor joins the chain before more rows go
        lo = hi + 1
    return removed
