"""The dispatcher: claims due outbox rows, hands them to the handler for their kind, records the outcome.

Handlers receive a batch of rows of one kind (so an email handler can reuse one SMTP connection and group
several unread messages for one recipient into one email) and answer one `JobOutcome` per row. A handler
that raises leaves its rows to be retried with backoff; nothing is dropped silently.

Exactly once (docs/notifications.md): while a batch is worked its claim is renewed (`outbox.Lease`, every
third of the lease), and handlers ask `outbox.still_held(jobs)` right before each email, push or webhook
goes, so a batch that outlasts the lease is never sent by a second worker too; a row whose claim another
worker took is left to it (`JobOutcome.released`). Outcomes are recorded with `outbox.until_recorded`: a
database restart delays the record of a sent email, it does not lose it (which would send it again).

Retention: with a policy, the loop also prunes old history (inbox.retention) every `prune_every_s`, one
small batch of each kind at a time; while a kind has more waiting, the next batch follows at the next tick,
between batches of sends. What each prune removed goes to `on_pruned` (the metrics count it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inbox import outbox, retention
from inbox.context import InboxContext
from inbox.retention import Policy as RetentionPolicy

if TYPE_CHECKING:
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

    @classmethod
    def released(cls, why: str) -> JobOutcome:
        """Not sent and not ours to settle: the claim was taken by another worker (or the row is given
        back untouched); nothing is recorded beyond giving up the claim, if it is still this one."""
        return cls("released", why)


Handler = Callable[[Sequence["OutboxJob"]], Awaitable[dict[int, JobOutcome]]]


class Dispatcher:
    def __init__(
        self,
        ctx: InboxContext,
        *,
        batch_size: int = 100,
        idle_s: float = 0.5,
        retention: RetentionPolicy | None = None,
        prune_every_s: float = 60.0,
    ) -> None:
        self.ctx = ctx
        self.retention = retention
        self.prune_every_s = prune_every_s
        self._next_prune = time.monotonic() + min(prune_every_s, 10.0)  # not in the start's busiest moment
        self.handlers: dict[str, Handler] = {}
        self.batch_size = batch_size
        self.idle_s = idle_s
        # host:pid:object, then a claim's own token after a slash (`claim_token`): 64 characters in all.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:55]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Told the rows each prune removed, by kind (gateway.metrics counts them).
        self.on_pruned: Callable[[dict[str, int]], None] | None = None

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    def wake(self) -> None:
        """New work was enqueued in this process: look now rather than at the next tick."""
        self._wake.set()

    def claim_token(self) -> str:
        """What a claim writes into `claimed_by`: this worker, and a token of the claim's own."""
        return f"{self.worker_id}/{secrets.token_hex(4)}"

    async def run_once(self) -> int:
        """Claim and handle one batch of due rows; returns how many rows were handled."""
        if not self.handlers:
            return 0
        jobs = await outbox.claim_due_jobs(
            self.ctx, self.claim_token(), limit=self.batch_size, kinds=list(self.handlers)
        )
        if not jobs:
            return 0
        lease = outbox.Lease(self.ctx, jobs)
        keeping = asyncio.create_task(self._keep(lease), name="securemsg-outbox-lease")
        using = outbox.use_lease(lease)
        try:
            await self._work(jobs)
        finally:
            outbox.end_lease(using)
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
        return len(jobs)

    async def _work(self, jobs: Sequence[OutboxJob]) -> None:
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
                await outbox.until_recorded(
                    functools.partial(self._record, job, outcome), f"the outcome of outbox row {job.id}"
                )

    async def _record(self, job: OutboxJob, outcome: JobOutcome) -> None:
        if outcome.status == "retry":
            await outbox.retry_later(self.ctx, job, outcome.note or "temporary failure", outcome.retry_after)
        elif outcome.status == "postponed":
            await outbox.postpone(self.ctx, job, outcome.retry_after or 0.0, outcome.note)
        elif outcome.status == "released":
            await outbox.release(job)
        else:
            await outbox.finish(self.ctx, job, outcome.status, outcome.note)

    async def _keep(self, lease: outbox.Lease) -> None:
        """Renew the batch's claim every third of the lease until the batch is over. A renewal that meets
        an unavailable database is tried again at the next turn (`Lease.holds` waits for one before a
        send whose claim has grown old)."""
        every = max(0.05, self.ctx.outbox_lease_s / 3)
        while True:
            await asyncio.sleep(every)
            try:
                await lease.renew()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("renewing an outbox claim failed (%s); trying again", type(exc).__name__)

    async def drain(self, max_rounds: int = 100) -> int:
        """Handle everything due now (tests move the clock and then drain)."""
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once()
            total += n
            if n == 0:
                break
        return total

    async def prune(self) -> dict[str, int]:
        """One batch of each kind of history the retention policy no longer keeps (none without one)."""
        if self.retention is None:
            return {}
        removed = await retention.prune_once(self.retention, self.ctx.clock.now())
        if self.on_pruned is not None:
            self.on_pruned(removed)
        return removed

    async def _prune_when_due(self) -> None:
        if self.retention is None or time.monotonic() < self._next_prune:
            return
        try:
            removed = await self.prune()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database briefly away: the next prune is as good
            log.warning("pruning old history failed: %s: %s", type(exc).__name__, exc)
            removed = {}
        if any(removed.values()):
            log.info("pruned old history: %s", ", ".join(f"{n} {kind}" for kind, n in removed.items() if n))
        behind = any(n >= self.retention.batch for n in removed.values())
        self._next_prune = time.monotonic() + (0.0 if behind else self.prune_every_s)

    async def _loop(self) -> None:
        while True:
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database briefly away: keep the loop, try again shortly
                log.warning("dispatcher tick failed: %s: %s", type(exc).__name__, exc)
                handled = 0
            await self._prune_when_due()
            if handled < self.batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.idle_s):
                        await self._wake.wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="securemsg-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
