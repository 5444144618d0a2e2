"""What the server writes to disk is its own user's only: var/ 0700; the SQLite database, its -wal and -shm
files, and the key files 0600 — checked on a real `python -m gateway serve`, started from a umask of 022."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_var_dir_database_and_key_files_are_private(tmp_path: Path) -> None:
    var = tmp_path / "var"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREMSG_")}
    env |= {"SECUREMSG_VAR_DIR": str(var), "PYTHONPATH": str(ROOT)}
    log = tmp_path / "serve.log"
    old_umask = os.umask(0o022)  # what a shell usually gives: files 0644 unless the server says otherwise
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--no-worker"],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    finally:
        os.umask(old_umask)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        db = var / "securemsg.sqlite3"
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), var / "secret.key", var / "data.key"]
        assert _mode(var) == 0o700
        for path in files:
            assert path.exists(), path
            assert _mode(path) == 0o600, (path.name, oct(_mode(path)))
        assert all(_mode(p) & 0o077 == 0 for p in var.rglob("*"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
