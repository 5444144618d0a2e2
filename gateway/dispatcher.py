"""The dispatcher: claims due outbox rows, hands them to the handler for their kind, records the outcome.

Handlers receive a batch of rows of one kind (so an email handler can reuse one SMTP connection and group
several unread messages for one recipient into one email) and answer one `JobOutcome` per row. A handler
that raises leaves its rows to be retried with backoff; nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from inbox import outbox
from inbox.context import InboxContext
from inbox.models import OutboxJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    status: str  # done | skipped | retry | failed | postponed
    note: str | None = None
    retry_after: float | None = None

    @classmethod
    def done(cls, note: str | None = None) -> JobOutcome:
        return cls("done", note)

    @classmethod
    def skipped(cls, why: str) -> JobOutcome:
        return cls("skipped", why)

    @classmethod
    def retry(cls, error: str, retry_after: float | None = None) -> JobOutcome:
        return cls("retry", error, retry_after)

    @classmethod
    def failed(cls, error: str) -> JobOutcome:
        return cls("failed", error)

    @classmethod
    def postponed(cls, why: str, delay_s: float) -> JobOutcome:
        """Not a failure: the row is due again in `delay_s` seconds (a throttle), attempts unchanged."""
        return cls("postponed", why, delay_s)


Handler = Callable[[Sequence[OutboxJob]], Awaitable[dict[int, JobOutcome]]]


class Dispatcher:
    def __init__(self, ctx: InboxContext, *, batch_size: int = 100, idle_s: float = 0.5) -> None:
        self.ctx = ctx
        self.handlers: dict[str, Handler] = {}
        self.batch_size = batch_size
        self.idle_s = idle_s
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    def wake(self) -> None:
        """New work was enqueued in this process: look now rather than at the next tick."""
        self._wake.set()

    async def run_once(self) -> int:
        """Claim and handle one batch of due rows; returns how many rows were handled."""
        if not self.handlers:
            return 0
        jobs = await outbox.claim_due_jobs(
            self.ctx, self.worker_id, limit=self.batch_size, kinds=list(self.handlers)
        )
        by_kind: dict[str, list[OutboxJob]] = {}
        for job in jobs:
            by_kind.setdefault(job.kind, []).append(job)
        for kind, batch in by_kind.items():
            try:
                outcomes = await self.handlers[kind](batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("handler for %s failed on %d rows", kind, len(batch))
                outcomes = {job.id: JobOutcome.retry(f"{type(exc).__name__}: {exc}") for job in batch}
            for job in batch:
                outcome = outcomes.get(job.id) or JobOutcome.retry("handler gave no outcome")
                if outcome.status == "retry":
                    await outbox.retry_later(
                        self.ctx, job, outcome.note or "temporary failure", outcome.retry_after
                    )
                elif outcome.status == "postponed":
                    await outbox.postpone(self.ctx, job, outcome.retry_after or 0.0, outcome.note)
                else:
                    await outbox.finish(self.ctx, job, outcome.status, outcome.note)
        return len(jobs)

    async def drain(self, max_rounds: int = 100) -> int:
        """Handle everything due now (tests move the clock and then drain)."""
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once()
            total += n
            if n == 0:
                break
        return total

    async def _loop(self) -> None:
        while True:
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database briefly away: keep the loop, try again shortly
                log.warning("dispatcher tick failed: %s: %s", type(exc).__name__, exc)
                handled = 0
            if handled < self.batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="securemsg-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
