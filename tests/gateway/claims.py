"""Another worker taking a batch's rows between their claim and their send (issue #14).

`taken_before_sending(client, clock, kind)` wraps the app dispatcher's handler for `kind`: before the real
handler runs, the clock moves past the lease (as if every renewal had failed, the database away) and the
batch's rows are claimed by another worker, as its `claim_due_jobs` would once their claim ran out. The
handler must then send nothing and leave the rows to that worker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from gateway.keys import CTX, DISPATCHER
from inbox.models import OutboxJob

OTHER_WORKER = "other-host:1:1/taken"


def taken_before_sending(client: Any, clock: Any, kind: str) -> list[int]:
    """Arrange it for the next batch of `kind`; the list fills with the ids of the rows taken."""
    app = client.server.app
    ctx = app[CTX]
    dispatcher = app[DISPATCHER]
    real = dispatcher.handlers[kind]
    taken: list[int] = []

    async def handler(batch: Sequence[OutboxJob]) -> Any:
        ids = [job.id for job in batch]
        clock.advance(ctx.outbox_lease_s + 1)
        until = clock.now() + timedelta(seconds=ctx.outbox_lease_s)
        await OutboxJob.filter(id__in=ids, status="pending").update(
            claimed_by=OTHER_WORKER, claimed_until=until
        )
        taken.extend(ids)
        dispatcher.register(kind, real)  # once
        return await real(batch)

    dispatcher.register(kind, handler)
    return taken
