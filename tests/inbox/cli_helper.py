"""Run `python -m gateway …` as a real subprocess against a test database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def run_cli(
    db_url: str, var_dir: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> tuple[int, str, str]:
    """Its exit status, standard output and standard error; `stdin` is what is typed (else none at all)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("SECUREMSG_")}
    full |= {
        "SECUREMSG_DATABASE_URL": db_url,
        "SECUREMSG_VAR_DIR": str(var_dir),
        "SECUREMSG_SECRET_KEY": "cli-test-secret-0123456789",
    }
    full |= env or {}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        cwd=ROOT,
        env=full,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    typed = stdin.encode() if stdin is not None else None
    out, err = await asyncio.wait_for(proc.communicate(typed), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
