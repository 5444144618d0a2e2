"""Export memory benchmark (R23): does the zip writer's memory stay flat as a practice's messages grow?

    python -m bench.export                      # 10k then 100k messages, SQLite in a temp dir
    python -m bench.export --messages 20000 100000 --database postgres://postgres@127.0.0.1:5432/bench

Messages are inserted with bulk_create (not through the API), encrypted as the server stores them, with
varied bodies of ~600 characters. The export is written with a password, as by default. Peak memory is
Python's own allocation peak (tracemalloc) during the export only, plus the process's maximum RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from inbox import db, exports
from inbox.clock import FakeClock
from inbox.context import InboxContext
from inbox.crypto import DataKeyring
from inbox.models import (
    CLIENT,
    TEAM,
    Conversation,
    ConversationMember,
    Export,
    Message,
    Participant,
    Practice,
)

_WORDS = (
    "week went well sleep better anxious work family session tuesday appointment homework breathing "
    "exercise journal mood stress talk call later thanks again felt calm worried plan next time"
).split()


def body_for(n: int) -> str:
    """~600 characters of varied words (real messages compress about this well, not like a repeated line)."""
    rng = random.Random(n)
    return " ".join(rng.choice(_WORDS) for _ in range(100))[:600]


@dataclass
class Seeded:
    practice: Practice
    owner: Participant
    messages: int
    conversations: int


async def seed_practice(ctx: InboxContext, messages: int, conversations: int = 50) -> Seeded:
    """A practice whose `messages` are spread over `conversations` client conversations, the first one
    holding half of them (one very long thread is the hard case for memory)."""
    now = ctx.clock.now()
    practice = await Practice.create(name="Bench Practice", created_at=now, client_messaging_enabled=True)
    owner = await Participant.create(
        practice=practice, kind=TEAM, name="Owner", email=f"owner-{practice.id}@bench.example",
        roles="account_owner,clinician", messaging_enabled=True, can_export=True, created_at=now,
    )  # fmt: skip
    await Participant.bulk_create(
        [
            Participant(
                practice=practice,
                kind=CLIENT,
                name=f"Client {i}",
                email=f"c{i}-{practice.id}@bench.example",
                primary_clinician=owner,
                messaging_enabled=True,
                portal_access=True,
                created_at=now,
            )  # fmt: skip
            for i in range(conversations)
        ]
    )
    clients = list(await Participant.filter(practice=practice, kind=CLIENT).order_by("id"))
    convs = []
    for c in clients:
        conv = await Conversation.create(
            practice=practice, member_key=f"{owner.id},{c.id}", client_id=c.id, created_at=now
        )
        await ConversationMember.bulk_create(
            [
                ConversationMember(conversation=conv, participant_id=pid, last_activity_at=now)
                for pid in (owner.id, c.id)
            ]
        )
        convs.append((conv, c))
    shares = [messages // 2] + [0] * (len(convs) - 1)
    rest = messages - shares[0]
    for i in range(rest):
        shares[1 + i % (len(convs) - 1) if len(convs) > 1 else 0] += 1
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for (conv, client), count in zip(convs, shares, strict=True):
        context = f"conversation:{conv.id}"
        for offset in range(0, count, 2000):
            chunk = range(offset, min(count, offset + 2000))
            await Message.bulk_create(
                [
                    Message(
                        conversation_id=conv.id,
                        sender_id=owner.id if n % 2 else client.id,
                        body_cipher=ctx.keyring.encrypt(f"{n}: {body_for(n)}", context),
                        created_at=start + timedelta(minutes=n),
                    )
                    for n in chunk
                ]
            )
    return Seeded(practice, owner, messages, len(convs))


async def measure(ctx: InboxContext, seeded: Seeded, out_dir: Path) -> tuple[int, float, int]:
    """(peak bytes allocated during the export, seconds, zip size)."""
    export = await exports.request_export(ctx, seeded.owner, "all", None, True)
    export = await Export.get(id=export.id)
    tracemalloc.start()
    tracemalloc.reset_peak()
    began = time.perf_counter()
    written = await exports.write_export(ctx, export, out_dir, practice_name=seeded.practice.name)
    took = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert written.messages == seeded.messages, (written.messages, seeded.messages)
    size = await asyncio.to_thread(os.path.getsize, written.path)
    await asyncio.to_thread(os.unlink, written.path)
    return peak, took, size


async def run(database: str | None, sizes: list[int]) -> None:
    ctx = InboxContext(
        keyring=DataKeyring([("k1", os.urandom(32))]), secret=os.urandom(32), clock=FakeClock()
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = database or f"sqlite://{tmp}/bench.sqlite3"
        await db.migrate(url)
        await db.connect(url)
        try:
            print(f"{'messages':>9} {'peak MiB':>9} {'seconds':>8} {'zip MiB':>8}")
            for n in sizes:
                seeded = await seed_practice(ctx, n)
                peak, took, size = await measure(ctx, seeded, Path(tmp) / "exports")
                print(f"{n:>9} {peak / 2**20:>9.2f} {took:>8.1f} {size / 2**20:>8.1f}", flush=True)
        finally:
            await db.disconnect()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"max RSS of the whole run (seeding included): {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--database", help="a Tortoise URL of an empty database (default: SQLite in a temp dir)"
    )
    args = parser.parse_args()
    asyncio.run(run(args.database, args.messages))


if __name__ == "__main__":
    main()
