"""`securemsg purge-messages` and `securemsg purge-audit` (docs/operations.md, "Purging old records"): what
the operator is told and asked; the purging itself is inbox.purge.

Both print what would go per practice, then (unless `--dry-run`) ask for the practice's name to be typed
(`all practices` without `--practice`), or take `--yes`, and purge in batches. Exit status 0 when done,
1 when a chain was not purged because it does not verify, 2 when refused (a bad date, no confirmation).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import datetime

from gateway.app import make_context
from gateway.config import Config
from inbox import audit, db, purge
from inbox.context import InboxContext

ALL = "all practices"


def _refuse(message: str) -> int:
    print(f"securemsg: {message}", file=sys.stderr)
    return 2


def confirmed(args: argparse.Namespace, name: str | None, what: str) -> bool:
    """`--yes`, or the practice's name (`all practices`) typed on standard input."""
    if args.yes:
        return True
    expected = name if args.practice is not None else ALL
    where = "the practice's name" if args.practice is not None else f'"{ALL}"'
    print(f"To {what}, type {where} ({expected}) and press Enter: ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip() == expected


async def run_purge(config: Config, args: argparse.Namespace) -> int:
    ctx = make_context(config)
    try:
        cutoff = purge.cutoff_of(args.before, ctx.clock.now().date(), younger_allowed=args.force_younger)
    except purge.PurgeRefused as exc:
        return _refuse(str(exc))
    await db.connect(config.database_url)
    try:
        name = None
        if args.practice is not None:
            name = await purge.practice_name(args.practice)
            if name is None:
                return _refuse(f"there is no practice {args.practice}; nothing was purged")
        if args.command == "purge-messages":
            return await _messages(ctx, args, cutoff, name)
        return await _audit(ctx, args, cutoff, name)
    finally:
        await db.disconnect()


async def _messages(ctx: InboxContext, args: argparse.Namespace, cutoff: datetime, name: str | None) -> int:
    day = cutoff.date().isoformat()
    counts = await purge.count_messages(cutoff, args.practice)
    for c in counts:
        print(
            f"practice {c.practice_id} ({c.name}): {c.messages} messages sent before {day} in "
            f"{c.conversations} conversations; {c.pending_notifications} notifications about them waiting"
        )
    total = sum(c.messages for c in counts)
    if args.dry_run:
        print(f"dry run: {total} messages would be purged; nothing was changed")
        return 0
    if total == 0:
        print(f"no message was sent before {day}; nothing to purge")
        return 0
    if not confirmed(args, name, f"purge {total} messages sent before {day}"):
        return _refuse("not confirmed; nothing was purged")
    # A send's audit row is sealed against its message: seal what waits before any message goes.
    for c in counts:
        if c.messages:
            await audit.seal(ctx, c.practice_id)
    run = purge.new_run_id()
    done: Counter[int] = Counter()
    after, batches = 0, 0
    while True:
        result = await purge.purge_messages_batch(
            ctx, cutoff, args.practice, run=run, forced=args.force_younger, after_id=after,
            batch=args.batch_size,
        )  # fmt: skip
        if not result.total:
            break
        done.update(result.messages)
        after, batches = result.last_id, batches + 1
    for pid in sorted(done):
        await audit.seal(ctx, pid)
        print(f"practice {pid}: {done[pid]} messages purged")
    print(
        f"purged {sum(done.values())} messages sent before {day} in {batches} batches (run {run}); "
        f"each batch wrote a {purge.MESSAGES_PURGED} audit row in its own transaction"
    )
    return 0


async def _audit(ctx: InboxContext, args: argparse.Namespace, cutoff: datetime, name: str | None) -> int:
    day = cutoff.date().isoformat()
    ids = [args.practice] if args.practice is not None else await audit.practices_with_events()
    names = await purge.practice_names(ids)
    plans = []
    for pid in ids:
        plan = await purge.plan_audit_purge(ctx, pid, names.get(pid, ""), cutoff)
        plans.append(plan)
        label = f"practice {pid} ({plan.name})"
        if plan.problem:
            print(f"{label}: not purged: {plan.problem}")
        elif plan.rows:
            print(
                f"{label}: {plan.rows} audit rows before {day} (seq {plan.first_seq} to {plan.through_seq}); "
                f"seq {plan.through_seq + 1} on stay"
            )
        else:
            print(f"{label}: no audit row before {day}")
    total = sum(p.rows for p in plans if not p.problem)
    broken = [p for p in plans if p.problem]
    if args.dry_run:
        print(f"dry run: {total} audit rows would be purged; nothing was changed")
        return 1 if broken else 0
    if total and not confirmed(args, name, f"purge {total} audit rows from before {day}"):
        return _refuse("not confirmed; nothing was purged")
    run = purge.new_run_id()
    for plan in plans:
        if plan.problem or not plan.rows:
            continue
        removed = await purge.purge_audit(
            ctx, plan, cutoff, run=run, forced=args.force_younger, batch=args.batch_size
        )
        (report,) = await audit.verify(ctx, plan.practice_id)
        state = "the chain verifies" if report.ok else f"the chain does NOT verify: {report.problem}"
        print(
            f"practice {plan.practice_id}: {removed} audit rows purged (seq {plan.first_seq} to "
            f"{plan.through_seq}); an {purge.AUDIT_PURGED} row at the chain's head records it; {state}"
        )
        if not report.ok:
            broken.append(plan)
    print(f"purged {sum(p.rows for p in plans if not p.problem)} audit rows from before {day} (run {run})")
    if broken:
        print(f"audit log NOT purged in {len(broken)} practice(s): see above")
        return 1
    return 0
