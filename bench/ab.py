"""Before and after: the send through this checkout's code and through another commit's, in the same run.

    python -m bench.ab --base REV [--messages 1500] [--rounds 6] [--concurrency 32] [--backend sqlite]
    python -m bench.ab --base REV --dispatch [--rounds 3]

REV is checked out into a temporary git worktree (removed afterwards); each tree serves from its own
`securemsg serve --processes 1 --no-worker` on its own fresh database, with the same practice made through
each one's own CLI and API. The rounds alternate A B, B A, … so that both trees see the same machine; each
figure is the median of the rounds, beside the base's: sends per second at the concurrency, and the server
process's CPU per send (all its threads, from /proc: what moves least on a noisy machine).

`--dispatch` runs `python -m bench.dispatch --history 1000` from each tree in turn instead (the dispatcher's
tick per 100 due rows: claim, plan, SMTP, settle) and compares the medians it prints.

For issue 15 ("the store moves, it does not slow down"): `python -m bench.ab --base <commit before the
move>`, figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import (
    ROOT,
    base_env,
    drop_pg_database,
    fresh_pg_database,
    make_practice,
    more_conversations,
    run_cli,
    start_securemsg,
)
from bench.loadgen import blast
from bench.send import cpu_s


def worktree(rev: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="bench-ab-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
        check=True,
        capture_output=True,
    )
    return path


def drop_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)


async def sends(base: Path, args: argparse.Namespace) -> list[str]:
    trees = {"base": base, "this": ROOT}
    servers, practices, convs, databases = {}, {}, {}, []
    try:
        for label, tree in trees.items():
            url = await fresh_pg_database() if args.backend == "postgres" else None
            if url:
                databases.append(url)
            env = base_env(Path(tempfile.mkdtemp(prefix=f"bench-ab-{label}-")), url)
            await run_cli(env, "migrate", cwd=tree)
            servers[label] = await start_securemsg(env, "--no-worker", cwd=tree)
            practices[label] = await make_practice(env, servers[label].url, cwd=tree)
            convs[label] = await more_conversations(servers[label].url, practices[label], args.conversations)
        for label in trees:  # warm up
            await blast(servers[label].url, practices[label].sender_token, convs[label], 300, 8)
        rates: dict[str, list[float]] = {label: [] for label in trees}
        cpu: dict[str, list[float]] = {label: [] for label in trees}
        for n in range(args.rounds):
            order = list(trees) if n % 2 == 0 else list(reversed(trees))
            for label in order:
                pid = servers[label].proc.pid
                before = cpu_s(pid)
                rate, _ = await blast(
                    servers[label].url,
                    practices[label].sender_token,
                    convs[label],
                    args.messages,
                    args.concurrency,
                )
                rates[label].append(rate)
                cpu[label].append((cpu_s(pid) - before) / args.messages * 1000)
    finally:
        for server in servers.values():
            await server.stop()
        for url in databases:
            await drop_pg_database(url)
    r = {k: statistics.median(v) for k, v in rates.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    every = "; ".join(f"{k} " + " ".join(f"{x:.0f}" for x in v) for k, v in rates.items())
    return [
        f"{args.backend:8s} send c={args.concurrency} over {args.conversations} conversations, median of "
        f"{args.rounds}: base {r['base']:.0f} msg/s  |  this {r['this']:.0f} msg/s (×{r['this'] / r['base']:.2f})",
        f"{args.backend:8s} server CPU per send: base {c['base']:.3f} ms  |  this {c['this']:.3f} ms "
        f"(×{c['this'] / c['base']:.2f})",
        f"{args.backend:8s} every round: {every} msg/s",
    ]


TICK = re.compile(r"1,000 stored messages .*?, (\d+) ms per 100 rows")


def dispatch(base: Path, args: argparse.Namespace) -> list[str]:
    trees = {"base": base, "this": ROOT}
    ticks: dict[str, list[int]] = {label: [] for label in trees}
    for n in range(args.rounds):
        order = list(trees) if n % 2 == 0 else list(reversed(trees))
        for label in order:
            out = subprocess.run(
                [sys.executable, "-m", "bench.dispatch", "--history", "1000", "--emails", "100"]
                + (["--backend", "postgres"] if args.backend == "postgres" else []),
                cwd=trees[label],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            found = TICK.search(out)
            if not found:
                raise RuntimeError(f"no tick figure from the {label} tree:\n{out}")
            ticks[label].append(int(found.group(1)))
    t = {k: statistics.median(v) for k, v in ticks.items()}
    every = "; ".join(f"{k} " + " ".join(str(x) for x in v) for k, v in ticks.items())
    return [
        f"{args.backend:8s} dispatcher tick per 100 due rows (1,000 stored), median of {args.rounds}: "
        f"base {t['base']:.0f} ms  |  this {t['this']:.0f} ms (×{t['this'] / t['base']:.2f}); every run: {every}"
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the commit to compare this checkout with")
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--conversations", type=int, default=1)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--dispatch", action="store_true", help="compare the dispatcher's tick instead")
    args = parser.parse_args()
    base = worktree(args.base)
    try:
        lines = dispatch(base, args) if args.dispatch else asyncio.run(sends(base, args))
    finally:
        drop_worktree(base)
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.base], capture_output=True, text=True
    ).stdout.strip()
    print(f"[ab] base {rev} against this checkout")
    print("\n".join("[ab] " + line for line in lines))


if __name__ == "__main__":
    main()
