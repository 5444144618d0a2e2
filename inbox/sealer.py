"""Soon, once: the audit rows a transaction wrote are sealed into their practice's chain shortly after it
commits, a batch at a time (inbox.audit.seal).

A send must not wait for the chain (one chain per practice is one point every writer would queue at), so
its row is written unsealed inside the send's own transaction and this is asked to seal a moment later.
Wakes that arrive meanwhile are folded into the same pass: under load one seal transaction covers many
sends. A pass that fails (the database is away) is left to the next wake or the periodic pass
(gateway.auditing.audit_part), which seals whatever any process left behind.

The worker is one long-lived task started with the app (`start`), not a task per wake: a wake often comes
from inside a transaction, and a task started there would inherit that transaction's connection (Tortoise
keeps it in a context variable) and try to seal through it after it has ended. Without a started worker
(the command line), a wake does nothing; rows written outside transactions are sealed at once anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

SEAL_DELAY_S = 0.2


class Sealer:
    def __init__(self, delay_s: float = SEAL_DELAY_S) -> None:
        self.delay_s = delay_s
        self._due: set[int] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.passes = 0  # for tests and benchmarks

    def start(self, seal: Callable[[int], Awaitable[int]]) -> None:
        """Call from a task that is in no transaction (an app's start-up)."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(seal), name="securemsg-audit-seal")

    def wake(self, practice_id: int) -> None:
        if self._wake is None or self._task is None or self._task.done():
            return
        self._due.add(practice_id)
        self._wake.set()

    async def _run(self, seal: Callable[[int], Awaitable[int]]) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.delay_s)  # let the wakes of the next few commits gather
            self._wake.clear()
            await self._pass(seal)

    async def _pass(self, seal: Callable[[int], Awaitable[int]]) -> None:
        due, self._due = self._due, set()
        self.passes += 1
        for practice_id in sorted(due):
            try:
                await seal(practice_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                name = type(exc).__name__
                log.warning("sealing audit rows of practice %s failed: %s", practice_id, name)

    async def close(self, seal: Callable[[int], Awaitable[int]] | None = None) -> None:
        """Stop; with `seal`, first seal what is due (a server stopping still seals what it wrote)."""
        task, self._task, self._wake = self._task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if seal is not None and self._due:
            await self._pass(seal)
