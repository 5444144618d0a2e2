"""Turns between processes writing one SQLite file, with a lock that wakes its waiter.

SQLite lets one writer in at a time. A writer that finds the file's write lock taken waits in SQLite's busy
handler, which sleeps (1, 2, 5, 10, 15, 20, 25 … ms) and tries again, rather than being woken when the lock
is free. With `serve --processes 2` on SQLite, a process's group commit often slept for milliseconds after
the other's commit had ended, with its sends waiting behind it, and the machine sat a quarter idle
(docs/benchmarks.md, run G).

So the group commits of every process on one file (`inbox.store.groupcommit`) take turns on an exclusive
`flock` of a file beside the database (`<database>-writer`, mode 0600) before they ask SQLite for its lock,
and the kernel wakes the next one the moment a commit lets go. SQLite's own locking still guards the data:
this only orders the group commits, so SQLite's busy handler seldom has to sleep. Other writers (migrations,
the dispatcher's claims, the ORM's transactions) do not take it and meet SQLite's busy handler as before.

- Taking the lock when it is free is one non-blocking `flock` on the event loop's thread.
- When it is taken, one daemon thread per process waits in a blocking `flock` (the GIL released meanwhile)
  and hands the lock to the event loop when it has it.
- The wait is bounded like SQLite's own (`TIMEOUT_S`): a caller that has waited that long (a holder that
  hangs without dying: a process killed by the kernel lets go at once) gets `TimeoutError`, which
  `inbox.db.unavailable` answers 503, and the lock the thread takes later is let go unused. A caller
  cancelled while waiting is treated the same way.
- Closing the file descriptor lets go of the lock; each turn opens the file afresh, so no descriptor
  outlives its turn (and a forked child shares none with its parent).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import threading
from dataclasses import dataclass, field

TIMEOUT_S = 5.0  # the same as the busy timeout sqlite3 gives SQLite (its `timeout` argument's default)


@dataclass
class _Wait:
    path: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]
    abandoned: bool = False
    guard: threading.Lock = field(default_factory=threading.Lock)


_waits: queue.SimpleQueue[_Wait] = queue.SimpleQueue()
_waiter: threading.Thread | None = None
_waiter_pid: int | None = None
_start = threading.Lock()


def lock_path(database: str) -> str:
    return f"{database}-writer"


def _open(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _hand_over(wait: _Wait, fd: int) -> None:
    """On the event loop: the waiter has the lock for `wait`; give it to its caller, or let it go."""
    with wait.guard:
        if wait.abandoned or wait.future.done():
            os.close(fd)
            return
        wait.future.set_result(fd)


def _wait_forever() -> None:
    while True:
        wait = _waits.get()
        with wait.guard:
            if wait.abandoned:
                continue
        try:
            fd = _open(wait.path)
        except OSError as exc:
            _tell(wait, exc)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks, without the GIL, until the holder lets go
        except OSError as exc:
            os.close(fd)
            _tell(wait, exc)
            continue
        with wait.guard:
            if wait.abandoned:
                os.close(fd)
                continue
        try:
            wait.loop.call_soon_threadsafe(_hand_over, wait, fd)
        except RuntimeError:  # the caller's event loop is closed: nobody will take it
            os.close(fd)


def _tell(wait: _Wait, error: OSError) -> None:
    try:
        wait.loop.call_soon_threadsafe(_fail, wait, error)
    except RuntimeError:  # the caller's event loop is closed
        pass


def _fail(wait: _Wait, error: OSError) -> None:
    with wait.guard:
        if not wait.abandoned and not wait.future.done():
            wait.future.set_exception(error)


def _ensure_waiter() -> None:
    global _waiter, _waiter_pid
    with _start:
        if _waiter is None or _waiter_pid != os.getpid() or not _waiter.is_alive():
            _waiter = threading.Thread(target=_wait_forever, name="securemsg-sqlite-writer-lock", daemon=True)
            _waiter.start()
            _waiter_pid = os.getpid()


async def acquire(database: str, timeout_s: float = TIMEOUT_S) -> int:
    """Take the writers' lock of this SQLite file; returns the descriptor that holds it (`release` it)."""
    path = lock_path(database)
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
    except BaseException:
        os.close(fd)
        raise
    loop = asyncio.get_running_loop()
    wait = _Wait(path, loop, loop.create_future())
    _ensure_waiter()
    _waits.put(wait)
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(wait.future)
    except BaseException:
        with wait.guard:
            wait.abandoned = True
            if wait.future.done() and not wait.future.cancelled() and wait.future.exception() is None:
                os.close(wait.future.result())  # handed over just as the wait ended
        raise


class Turn:
    """A held lock, let go of once (from whichever thread is first: closing a descriptor twice could close
    another file that took its number meanwhile)."""

    def __init__(self, fd: int) -> None:
        self._fds = [fd]

    def release(self) -> None:
        try:
            fd = self._fds.pop()  # atomic: only one caller gets it
        except IndexError:
            return
        os.close(fd)


async def turn(database: str, timeout_s: float = TIMEOUT_S) -> Turn:
    """`acquire`, as a `Turn` to `release`."""
    return Turn(await acquire(database, timeout_s))
