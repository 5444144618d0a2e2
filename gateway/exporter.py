"""The export part (R23): registers the outbox handler that writes export zips under var/exports/.

A request is a row in the outbox, so an export survives a restart; the worker that claims it keeps its
lease alive while it writes, so a long export is never written twice at once. A stored message that does
not decrypt fails the export at once with a reason; other errors are retried twice before it fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.dispatcher import JobOutcome
from gateway.keys import CONFIG, CTX, DISPATCHER
from inbox import audit, db, directory, exports
from inbox.context import InboxContext
from inbox.crypto import DecryptError

if TYPE_CHECKING:
    from inbox.models import Export, OutboxJob

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
HEARTBEAT_EVERY_S = 20.0


class ExportHandler:
    def __init__(self, ctx: InboxContext, out_dir: str) -> None:
        self.ctx = ctx
        self.out_dir = out_dir

    async def __call__(self, batch: Sequence[OutboxJob]) -> dict[int, JobOutcome]:
        return {job.id: await self.run(job) for job in batch}

    async def run(self, job: OutboxJob) -> JobOutcome:
        ctx = self.ctx
        # Earlier exports in this batch may have taken a while: make sure this one is still ours.
        if not await exports.keep_claim(ctx, job):
            return JobOutcome.skipped("claimed by another worker")
        export = await exports.export_of_job(int(job.payload.get("export_id") or 0))
        if export is None:
            return JobOutcome.skipped("export no longer exists")
        if export.status != "pending":
            return JobOutcome.skipped(f"export already {export.status}")
        practice = await directory.get_practice(export.practice_id)
        last_beat = time.monotonic()

        async def heartbeat() -> None:
            nonlocal last_beat
            if time.monotonic() - last_beat >= HEARTBEAT_EVERY_S:
                last_beat = time.monotonic()
                if not await exports.keep_claim(ctx, job):
                    raise LostClaim()

        try:
            written = await exports.write_export(
                ctx, export, Path(self.out_dir), practice_name=practice.name, heartbeat=heartbeat
            )
        except LostClaim:
            return JobOutcome.skipped("claimed by another worker")
        except DecryptError:
            return await self._fail(export, "A stored message does not decrypt with this server's data keys.")
        except Exception as exc:
            # Only the type: an exception's text could quote stored data.
            log.warning("export %s: attempt %d failed: %s", export.id, job.attempts + 1, type(exc).__name__)
            reason = f"The export could not be written ({type(exc).__name__})."
            if job.attempts + 1 >= MAX_ATTEMPTS:
                return await self._fail(export, reason)
            return JobOutcome.retry(reason)
        async with db.transaction():  # ready and its audit row commit together
            if await exports.mark_ready(ctx, export, written):
                await audit.record(
                    ctx,
                    export.practice_id,
                    audit.SYSTEM,
                    "export.ready",
                    "export",
                    export.id,
                    {"conversations": written.conversations, "messages": written.messages},
                )
        return JobOutcome.done()

    async def _fail(self, export: Export, reason: str) -> JobOutcome:
        async with db.transaction():
            if await exports.mark_failed(self.ctx, export, reason):
                await audit.record(
                    self.ctx,
                    export.practice_id,
                    audit.SYSTEM,
                    "export.failed",
                    "export",
                    export.id,
                    {"reason": reason},
                )
        return JobOutcome.failed(reason)


class LostClaim(Exception):
    """Another worker holds the job now; stop writing."""


async def export_part(app: web.Application) -> AsyncIterator[None]:
    app[DISPATCHER].register(exports.EXPORT, ExportHandler(app[CTX], str(app[CONFIG].var_dir / "exports")))
    yield
