"""`securemsg serve --processes N`: all the cores of one machine (issue 18).

Python runs one request's code at a time per process, so one gateway uses one core. Here a small supervising
parent starts N gateway processes on one port and keeps them running:

- Each child binds the port with SO_REUSEPORT (web.TCPSite(reuse_port=True)): the kernel spreads new
  connections over the children by their addresses, so 32 keep-alive connections opened at once land on both,
  where with one shared listening socket the first process to wake would take the whole burst. The parent
  binds the port once first (no SO_REUSEPORT) only to say clearly that it is taken.
- The dispatcher runs in child 0 only (none with --no-worker): one process claims due rows, the others answer.
- Realtime events cross the processes through Redis when it is configured, else through PostgreSQL
  LISTEN/NOTIFY (gateway.realtime.PgHub). SQLite without Redis has nothing to carry them, so N > 1 is refused.
  SQLite with Redis works: SQLite lets one writer in at a time and every other waits, bounded by its busy
  timeout (then the request answers 503 with Retry-After, as for any locked database).
- A child that dies is started again after a backoff (BACKOFF_FIRST_S doubling to BACKOFF_MAX_S; back to the
  first once a child has lived STEADY_S). The other children keep the port answering meanwhile.
- SECUREMSG_METRICS_LISTEN is served by the parent: each child serves its /metrics on a Unix socket in a
  private directory, and the parent reads them all when scraped (gateway.metrics.merge_processes), so one
  address covers the N processes and no child competes for it.
- SIGTERM or SIGINT to the parent is passed to every child, which shuts down cleanly (its websockets closed,
  requests finished); a child still running after STOP_TIMEOUT_S is killed. Each child asks the kernel for
  SIGTERM should the parent die without a word (kill -9), so no gateway outlives its supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from gateway.config import Config, ConfigError

log = logging.getLogger("securemsg.procs")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
STEADY_S = 30.0  # a child that lived this long was healthy: the next restart waits BACKOFF_FIRST_S again
STOP_TIMEOUT_S = 30.0
PARENT_ENV = "SECUREMSG_SUPERVISOR_PID"  # set in each child: the parent it must not outlive
PR_SET_PDEATHSIG = 1
SOCKET_PATH_MAX = 100  # a Unix socket's path holds at most 107 bytes on Linux


def shares_events(config: Config) -> bool:
    """Whether several processes can share realtime events: through Redis, or PostgreSQL's LISTEN/NOTIFY."""
    return bool(config.redis_url) or config.database_url.startswith(("postgres://", "asyncpg://"))


def resolve_processes(config: Config, asked: int | None, *, dev_mail: bool) -> int:
    """How many gateway processes to run. Unasked: one per CPU where events can cross processes, else one.
    Asked for more than one where they cannot (SQLite without Redis), or with the dev mail sink (one SMTP
    port, one process): a ConfigError, which the CLI prints as one line and exits 2."""
    if asked is None:
        return 1 if dev_mail or not shares_events(config) else max(1, os.cpu_count() or 1)
    if asked > 1 and not shares_events(config):
        raise ConfigError(
            f"--processes {asked} needs SECUREMSG_REDIS_URL or a PostgreSQL database to carry realtime "
            "events between the processes; with SQLite and no Redis, run --processes 1"
        )
    if asked > 1 and dev_mail:
        raise ConfigError("--dev-mail runs one SMTP sink in one process: use it with --processes 1")
    return asked


def check_port_free(host: str, port: int) -> None:
    """Bind once without SO_REUSEPORT: fails when anything listens there already (another server, or a
    second securemsg whose children would otherwise silently share the port with ours)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} does not resolve ({exc.strerror})") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})") from exc


def die_with_parent() -> None:
    """In a child: be sent SIGTERM when the supervisor dies, however it dies (Linux prctl; elsewhere a
    no-op). If it died before this call, stop now rather than run unsupervised."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):
        raise SystemExit(0)


class Supervisor:
    def __init__(
        self,
        host: str,
        port: int,
        processes: int,
        *,
        worker: bool,
        metrics_listen: tuple[str, int] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.processes = processes
        self.worker = worker
        self.metrics_listen = metrics_listen
        self.metrics_sockets: dict[int, Path] = {}
        self.stopping = asyncio.Event()
        self.children: dict[int, asyncio.subprocess.Process] = {}
        self.restarts = 0

    def argv(self, index: int) -> list[str]:
        args = [sys.executable, "-m", "gateway", "serve", "--host", self.host, "--port", str(self.port)]
        args += ["--processes", "1", "--supervised"]
        if index != 0 or not self.worker:
            args.append("--no-worker")
        if index in self.metrics_sockets:
            args += ["--metrics-socket", str(self.metrics_sockets[index])]
        return args

    async def run(self) -> int:
        if self.metrics_listen is None:
            return await self.supervise()
        from gateway import metrics

        # A private directory (0700) for the children's sockets: only this user can read their pages.
        private = _private_dir()
        try:
            self.metrics_sockets = {i: private / f"{i}.sock" for i in range(self.processes)}
            # Before any child starts: a taken address stops the start in one line, as with one process.
            runner = await metrics.listen_on(
                metrics.supervisor_app(self.metrics_sockets), self.metrics_listen
            )
            try:
                return await self.supervise()
            finally:
                await runner.cleanup()
        finally:
            shutil.rmtree(private, ignore_errors=True)

    async def supervise(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        log.info(
            "supervising %d gateway processes on %s:%d (dispatcher: %s)",
            self.processes,
            self.host,
            self.port,
            "process 0" if self.worker else "none, --no-worker",
        )
        keepers = [
            asyncio.create_task(self.keep(i), name=f"securemsg-child-{i}") for i in range(self.processes)
        ]
        await self.stopping.wait()
        log.info("stopping %d gateway processes", len(self.children))
        await asyncio.gather(*keepers)
        log.info("all gateway processes stopped")
        return 0

    async def keep(self, index: int) -> None:
        """Run child `index` until the supervisor stops; start it again after a backoff when it dies."""
        backoff = BACKOFF_FIRST_S
        env = dict(os.environ, **{PARENT_ENV: str(os.getpid())})
        while not self.stopping.is_set():
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(*self.argv(index), env=env)
            self.children[index] = proc
            log.info("gateway process %d started (pid %d)", index, proc.pid)
            stop = asyncio.create_task(self.stopping.wait())
            exited = asyncio.create_task(proc.wait())
            await asyncio.wait({stop, exited}, return_when=asyncio.FIRST_COMPLETED)
            if self.stopping.is_set():
                exited.cancel()
                await self.stop_child(index, proc)
                return
            stop.cancel()
            if time.monotonic() - started >= STEADY_S:
                backoff = BACKOFF_FIRST_S
            self.restarts += 1
            log.warning(
                "gateway process %d (pid %d) exited with %s; starting it again in %.1f s",
                index,
                proc.pid,
                _how(proc.returncode),
                backoff,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self.stopping.wait()
            backoff = min(BACKOFF_MAX_S, backoff * 2)
        self.children.pop(index, None)

    async def stop_child(self, index: int, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                log.warning("gateway process %d (pid %d) did not stop in time; killing it", index, proc.pid)
                proc.kill()
                await proc.wait()
        self.children.pop(index, None)


def _private_dir() -> Path:
    """A new directory only this user can enter (0700), short enough to hold Unix sockets."""
    private = Path(tempfile.mkdtemp(prefix="securemsg-metrics-"))
    if len(str(private / "255.sock")) > SOCKET_PATH_MAX:  # a long TMPDIR
        private.rmdir()
        private = Path(tempfile.mkdtemp(prefix="securemsg-metrics-", dir="/tmp"))
    return private


def _how(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"status {returncode}"


def supervise(
    host: str, port: int, processes: int, *, worker: bool, metrics_listen: tuple[str, int] | None = None
) -> int:
    return asyncio.run(Supervisor(host, port, processes, worker=worker, metrics_listen=metrics_listen).run())
