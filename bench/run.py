"""`make bench`: every benchmark with small defaults, one after another, then all the figures together.

    python -m bench.run [--only send,variants,fanout,dispatch,dispatch-postgres,push,export]

Each benchmark runs in its own process (they start servers, fakes and databases of their own) and prints
its figures beside the ceiling it measured in the same run; this prints the machine first, since the figures
mean little without it, and the load average before and after, since the machine may be shared.
docs/benchmarks.md records the latest run and what each goal's gap comes from.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import sys
import time

from bench.common import PG_URL, ROOT

DISPATCH = ["--history", "1000,1000000", "--due", "100", "--rounds", "3", "--emails", "500"]
# name: (module in bench/, its arguments)
BENCHES: dict[str, tuple[str, list[str]]] = {
    "send": ("send", ["--messages", "1000", "--rounds", "3", "--backends", "sqlite,postgres"]),
    # uvloop and orjson against the stock server on the send path and the fan-out (issue 15).
    "variants": ("variants", ["--messages", "1000", "--rounds", "4", "--sockets", "1000"]),
    "fanout": ("fanout", ["--sends", "300", "--sockets", "1000", "--idle", "10000"]),
    "dispatch": ("dispatch", DISPATCH),
    # The scale-out database: its queries must follow what is due too (skipped when no server answers).
    "dispatch-postgres": ("dispatch", [*DISPATCH, "--backend", "postgres"]),
    "push": ("push", ["--pushes", "20000"]),
    "export": ("export", ["--messages", "10000", "50000"]),
}


def machine() -> list[str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return [
        f"machine: {os.cpu_count()} CPUs (nproc), {cpu}, {mem_kb / 1024 / 1024:.1f} GiB memory",
        f"software: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.platform()}",
        f"PostgreSQL: {PG_URL}",
    ]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


async def run_one(name: str, module: str, args: list[str]) -> tuple[list[str], float, int]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", f"bench.{module}", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    lines = [line for line in out.decode().splitlines() if line.strip()]
    if proc.returncode != 0:
        lines.append(f"{name}: FAILED (exit {proc.returncode})")
        lines += ["  " + line for line in err.decode().splitlines()[-15:]]
    return lines, time.monotonic() - started, proc.returncode or 0


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(BENCHES))
    chosen = parser.parse_args().only.split(",")
    unknown = [c for c in chosen if c not in BENCHES]
    if unknown:
        print(
            f"bench.run: unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}", file=sys.stderr
        )
        return 2
    header = [*machine(), f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {load()}"]
    print("\n".join(header), flush=True)
    summary: list[str] = []
    failed = 0
    started = time.monotonic()
    for name in chosen:
        module, args = BENCHES[name]
        print(f"\n== {name}: python -m bench.{module} {' '.join(args)}", flush=True)
        lines, seconds, code = await run_one(name, module, args)
        failed += code != 0
        print("\n".join(lines), flush=True)
        print(f"   ({seconds:.0f} s, {load()})", flush=True)
        summary += [f"[{name}] {line}" for line in lines]
    print(f"\n== all figures ({time.monotonic() - started:.0f} s in all, {load()})")
    print("\n".join(header[:2]))
    print("\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
