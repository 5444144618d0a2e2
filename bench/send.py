"""Send throughput and latency against a running `securemsg serve`, beside a bare aiohttp ceiling.

    python -m bench.send [--messages N] [--backends sqlite,postgres]

For each backend: sequential latency (p50/p95/p99) and throughput at concurrency 1, 8 and 32, interleaved
round by round with the bare server so both see the same machine noise. Goals (issue #7): sequential p50 ≤ 2 ms;
throughput at concurrency 32 ≥ 0.5× the bare ceiling on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bench.common import (
    Server,
    base_env,
    drop_pg_database,
    fresh_pg_database,
    make_practice,
    percentile,
    pg_available,
    start_bare,
    start_securemsg,
    summary_ms,
)

CONCURRENCY = (1, 8, 32)


async def blast(url: str, token: str, conv_id: int, n: int, concurrency: int) -> tuple[float, list[float]]:
    """Send n messages with `concurrency` workers; returns (messages/s, latencies)."""
    latencies: list[float] = []
    path = f"{url}/api/v1/conversations/{conv_id}/messages"
    headers = {"Authorization": f"Bearer {token}"}
    counter = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for i in counter:
                body = {"body": f"benchmark message {i}", "client_msg_id": uuid.uuid4().hex}
                t0 = time.perf_counter()
                async with http.post(path, json=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status not in (200, 201):
                        raise RuntimeError(f"send answered {resp.status}")
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return n / elapsed, latencies


def cpu_s(pid: int) -> float:
    """CPU seconds a process has used so far (every thread, user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_cpu_s(pid: int) -> float:
    """CPU seconds of the process's main thread alone: the event loop, where every request's Python runs
    (the rest is the database threads and the thread pool)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sqlite_commit_ms(directory: Path, n: int = 200) -> float:
    """p50 of one tiny durable commit on this disk (WAL, synchronous=FULL: what the server does)."""
    import sqlite3

    conn = sqlite3.connect(directory / "commit-probe.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    conn.close()
    return percentile(times, 50) * 1000


async def postgres_commit_ms(url: str, n: int = 200) -> float:
    """p50 of one tiny autocommit INSERT round trip (the server's WAL flush included)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        # Not a TEMP table: those skip the write-ahead log, and its flush is the cost being measured.
        await conn.execute("CREATE TABLE commit_probe (x integer)")
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            await conn.execute("INSERT INTO commit_probe VALUES ($1)", i)
            times.append(time.perf_counter() - t0)
        await conn.execute("DROP TABLE commit_probe")
    finally:
        await conn.close()
    return percentile(times, 50) * 1000


async def bench_backend(name: str, database_url: str | None, messages: int, rounds: int) -> list[str]:
    var = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    env = base_env(var, database_url)
    from bench.common import run_cli

    await run_cli(env, "migrate")
    server: Server = await start_securemsg(env, "--no-worker")
    bare: Server = await start_bare()
    lines = []
    try:
        practice = await make_practice(env, server.url)
        await blast(server.url, practice.sender_token, practice.conversation_id, 200, 8)  # warm up
        await blast(bare.url, "x", practice.conversation_id, 200, 8)
        for c in CONCURRENCY:
            ours_rates, bare_rates, ours_lat, bare_lat = [], [], [], []
            ours_cpu = ours_loop = bare_cpu = 0.0
            for _ in range(rounds):  # interleaved: ours, bare, ours, bare …
                before, before_loop = cpu_s(server.proc.pid), loop_cpu_s(server.proc.pid)
                rate, lat = await blast(
                    server.url, practice.sender_token, practice.conversation_id, messages, c
                )
                ours_cpu += cpu_s(server.proc.pid) - before
                ours_loop += loop_cpu_s(server.proc.pid) - before_loop
                ours_rates.append(rate)
                ours_lat += lat
                before = cpu_s(bare.proc.pid)
                rate, lat = await blast(bare.url, "x", practice.conversation_id, messages, c)
                bare_cpu += cpu_s(bare.proc.pid) - before
                bare_rates.append(rate)
                bare_lat += lat
            ours, ceiling = max(ours_rates), max(bare_rates)
            per = 1000 / (messages * rounds)
            cpu_line = (
                f"{name:8s} c={c:<3d} server CPU per request: securemsg {ours_cpu * per:.3f} ms "
                f"(event loop {ours_loop * per:.3f} ms), bare {bare_cpu * per:.3f} ms "
                "(the server process, all threads, user + system; a database server is not counted)"
            )
            lines.append(
                f"{name:8s} c={c:<3d} securemsg {ours:8.0f} msg/s  {summary_ms(ours_lat)}  |  "
                f"bare {ceiling:8.0f} req/s  {summary_ms(bare_lat)}  |  ratio {ours / ceiling:4.2f}"
            )
            if c == 1:
                p50 = percentile(ours_lat, 50) * 1000
                commit = await postgres_commit_ms(database_url) if database_url else sqlite_commit_ms(var)
                lines.append(
                    f"{name:8s} sequential send p50 {p50:.2f} ms (goal ≤ 2 ms: {'met' if p50 <= 2 else 'NOT met'}); "
                    f"one bare durable commit on this machine now: p50 {commit:.2f} ms"
                )
            if c == 32 and name == "sqlite":
                ok = ours / ceiling >= 0.5
                lines.append(
                    f"{name:8s} c=32 ratio {ours / ceiling:.2f} (goal ≥ 0.5: {'met' if ok else 'NOT met'})"
                )
            lines.append(cpu_line)
    finally:
        await server.stop()
        await bare.stop()
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    out = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            out += await bench_backend("sqlite", None, args.messages, args.rounds)
        elif backend == "postgres":
            if not await pg_available():
                out.append("postgres: not reachable, skipped")
                continue
            url = await fresh_pg_database()
            try:
                out += await bench_backend("postgres", url, args.messages, args.rounds)
            finally:
                await drop_pg_database(url)
    print("\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
