"""A private PostgreSQL cluster for one test, so that the test can stop and start it at will without
touching the machine's shared server: `initdb` into a fresh directory, `pg_ctl start/stop` on a free port
with its socket in that directory. As root, the binaries run as the `postgres` user (PostgreSQL refuses
to run as root).

Without the binaries the test is skipped with the reason, unless SECUREMSG_TEST_REQUIRE_SERVICES is set,
in which case it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import tempfile
from pathlib import Path

from tests.conftest import need
from tests.faults.procs import free_port


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class PrivateCluster:
    def __init__(self) -> None:
        bindir = _bindir()
        if bindir is None:
            need("postgres binaries (initdb, pg_ctl)", None)
        assert bindir is not None
        self.bindir = bindir
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        # Not under pytest's tmp_path: that is private to root (0700) and the postgres user must get in.
        self.dir = Path(tempfile.mkdtemp(prefix="securemsg-pg-"))
        self.data = self.dir / "data"
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/securemsg"

    async def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out.decode(errors='replace')}"

    async def init(self) -> None:
        await self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        await self.start()
        import asyncpg

        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            await conn.execute("CREATE DATABASE securemsg")
        finally:
            await conn.close()

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )

    async def stop(self, mode: str = "immediate") -> None:
        """`immediate`: like a crash (connections cut, recovery on the next start); `fast`: a clean stop."""
        await self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    async def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            await self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _cluster_pids(cluster: PrivateCluster) -> list[int]:
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    return [postmaster, *_children(postmaster)]


def freeze(cluster: PrivateCluster) -> list[int]:
    """SIGSTOP the server and all its backends: connections stay open and nothing answers (a hung host,
    a network that drops packets). Returns the pids to thaw."""
    pids = _cluster_pids(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


def thaw(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
