"""Send throughput and latency against a running `securemsg serve`, beside a bare aiohttp ceiling.

    python -m bench.send [--messages N] [--backends sqlite,postgres]

For each backend: sequential latency (p50/p95/p99) and throughput at concurrency 1, 8 and 32, interleaved
round by round with the bare server so both see the same machine noise (rates: the median of the rounds).
Then `serve --processes 1` against `--processes 2` at concurrency 32, round by round beside the bare server. Goals (issue #7): sequential p50 ≤ 2 ms;
throughput at concurrency 32 ≥ 0.5× the bare ceiling on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import (
    REDIS_URL,
    Practice,
    Server,
    base_env,
    drop_pg_database,
    fresh_pg_database,
    make_practice,
    more_conversations,
    percentile,
    pg_available,
    redis_available,
    start_bare,
    start_securemsg,
    summary_ms,
)
from bench.loadgen import blast

CONCURRENCY = (1, 8, 32)
SCALE_CONCURRENCY = 32


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
            ours, ceiling = statistics.median(ours_rates), statistics.median(bare_rates)
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
        if database_url:
            lines.append(await scale_out(env, server, practice, messages, rounds))
    finally:
        await server.stop()
        await bare.stop()
    lines.append(await processes(name, database_url, messages, rounds))
    return lines


async def processes(name: str, database_url: str | None, messages: int, rounds: int) -> str:
    """`serve --processes 1` against `serve --processes 2` on one database (SQLite with Redis, since two
    processes need it for events; PostgreSQL without), at concurrency 32 over 32 conversations, beside the
    bare ceiling, round by round: one, two, bare."""
    extra = {} if database_url else {"SECUREMSG_REDIS_URL": REDIS_URL}
    if not database_url and not await redis_available():
        return f"{name:8s} processes: no Redis at {REDIS_URL}, skipped (SQLite needs it for two processes)"
    var = Path(tempfile.mkdtemp(prefix=f"bench-procs-{name}-"))
    env = base_env(var, database_url, **extra)
    from bench.common import run_cli

    await run_cli(env, "migrate")
    one = await start_securemsg(env, "--no-worker", "--processes", "1")
    two = await start_securemsg(env, "--no-worker", "--processes", "2")
    bare = await start_bare()
    try:
        await asyncio.sleep(3)  # the second child of `two` is up by now (readiness saw the first)
        practice = await make_practice(env, one.url)
        convs = await more_conversations(one.url, practice, SCALE_CONCURRENCY)
        token = practice.sender_token
        for url in (one.url, two.url):
            await blast(url, token, convs, 400, SCALE_CONCURRENCY)  # warm up every process
        rates: dict[str, list[float]] = {"one": [], "two": [], "bare": []}
        busy: dict[str, list[float]] = {"one": [], "two": []}
        spent: dict[str, list[tuple[float, ...]]] = {"one": [], "two": []}
        relay = "postgres" if database_url else "redis-server"
        for _ in range(rounds):
            for label, server in (("one", one), ("two", two)):
                before, cpu_before = machine_cpu(), where_cpu_goes(server, relay)
                rates[label].append((await blast(server.url, token, convs, messages, SCALE_CONCURRENCY))[0])
                busy[label].append(busy_since(before))
                after = where_cpu_goes(server, relay)
                spent[label].append(
                    tuple((b - a) / messages * 1000 for a, b in zip(cpu_before, after, strict=True))
                )
            rates["bare"].append((await blast(bare.url, "x", convs, messages, SCALE_CONCURRENCY))[0])
    finally:
        for server in (one, two, bare):
            await server.stop()
    r1, r2, ceiling = (statistics.median(rates[k]) for k in ("one", "two", "bare"))
    ratio = r2 / r1
    rounds_text = " ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(rates["one"], rates["two"], strict=True))
    cpu = {k: [statistics.median(x) for x in zip(*v, strict=True)] for k, v in spent.items()}
    return (
        f"{name:8s} c={SCALE_CONCURRENCY} --processes 1 {r1:.0f} msg/s (machine "
        f"{statistics.median(busy['one']):.0%} busy)  |  --processes 2 {r2:.0f} msg/s (machine "
        f"{statistics.median(busy['two']):.0%} busy)  |  bare {ceiling:.0f} req/s  |  ×{ratio:.2f} "
        f"(goal ≥ 1.6: {'met' if ratio >= 1.6 else 'NOT met'}; medians of {rounds} rounds, one/two in each: "
        f"{rounds_text})\n"
        f"{name:8s} c={SCALE_CONCURRENCY} CPU per send, --processes 1 / 2: gateways {cpu['one'][0]:.3f} / "
        f"{cpu['two'][0]:.3f} ms, load generator {cpu['one'][1]:.3f} / {cpu['two'][1]:.3f} ms, "
        f"{'PostgreSQL' if database_url else 'Redis'} {cpu['one'][2]:.3f} / {cpu['two'][2]:.3f} ms"
    )


def where_cpu_goes(server: Server, relay: str) -> tuple[float, float, float]:
    """CPU seconds so far of: the gateway processes (the supervisor and its children), this process (the
    load generator), and the relay's or database's server processes on this machine (redis-server, or
    every postgres process: other users of this PostgreSQL count too)."""
    gateways = [server.proc.pid, *children_of(server.proc.pid)]
    return (
        sum(cpu_s_or_0(p) for p in gateways),
        cpu_s(os.getpid()),
        sum(cpu_s_or_0(p) for p in pids_named(relay)),
    )


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cpu_s_or_0(pid: int) -> float:
    try:
        return cpu_s(pid)
    except (OSError, ValueError, IndexError):
        return 0.0  # gone meanwhile


async def scale_out(
    env: dict[str, str], server: Server, practice: Practice, messages: int, rounds: int
) -> str:
    """PostgreSQL: the same load (concurrency 32, spread over 32 conversations) through one gateway, then
    through two on the same database (16 connections each), interleaved round by round."""
    second = await start_securemsg(env, "--no-worker")
    try:
        convs = await more_conversations(server.url, practice, SCALE_CONCURRENCY)
        both = [server.url, second.url]
        await blast(both, practice.sender_token, convs, 200, 8)  # warm up
        one_runs: list[tuple[float, float]] = []
        two_runs: list[tuple[float, float]] = []
        for _ in range(rounds):
            for urls, runs in ((server.url, one_runs), (both, two_runs)):
                before = machine_cpu()
                rate, _ = await blast(urls, practice.sender_token, convs, messages, SCALE_CONCURRENCY)
                runs.append((rate, busy_since(before)))
    finally:
        await second.stop()
    one, one_busy = (statistics.median(x) for x in zip(*one_runs, strict=True))
    two, two_busy = (statistics.median(x) for x in zip(*two_runs, strict=True))
    return (
        f"postgres c={SCALE_CONCURRENCY} over {SCALE_CONCURRENCY} conversations: 1 gateway {one:.0f} msg/s "
        f"(machine {one_busy:.0%} busy)  |  2 gateways on the same database {two:.0f} msg/s "
        f"(machine {two_busy:.0%} busy)  |  ×{two / one:.2f} (scale-out, no goal)"
    )


def machine_cpu() -> tuple[int, int]:
    """(all, idle) jiffies of every CPU so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]  # idle + iowait


def busy_since(before: tuple[int, int]) -> float:
    """How busy all of the machine's CPUs were since `before` (0 to 1): clients, servers and databases."""
    total, idle = machine_cpu()
    spent = total - before[0]
    return 1 - (idle - before[1]) / spent if spent else 0.0


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
