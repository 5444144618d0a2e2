"""uvloop and orjson on the send path and the websocket fan-out, beside the stock server, in the same run.

    python -m bench.variants [--messages 1000] [--rounds 4] [--sockets 1000] [--backend sqlite|postgres]

Four `securemsg serve --no-worker` processes, each on a database of its own: stock (asyncio's loop, the
standard `json`), `--uvloop`, `--orjson`, and both (bench/variant_server.py). Round after round they take
turns (the order rotates each round, so none always goes first): `messages` sends at concurrency 32, then
one event to `sockets` websockets, then sequential sends timed to the recipient's websocket frame. Each
figure is the median of its rounds, with its ratio to stock's median of the same run; the server's CPU per
send (the whole process, from /proc) is given too, since on a shared machine it moves less than a rate. The
bare aiohttp server (bench/bare.py) with asyncio's loop and with uvloop takes its turns in the same rounds:
what uvloop gives a server that does nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
from pathlib import Path

from bench.common import (
    Practice,
    Server,
    base_env,
    drop_pg_database,
    fresh_pg_database,
    make_practice,
    percentile,
    pg_available,
    run_cli,
    start_bare,
    start_securemsg,
)
from bench.fanout import end_to_end, many_sockets
from bench.send import blast, cpu_s

VARIANTS: dict[str, tuple[str, ...]] = {
    "stock": (),
    "uvloop": ("--uvloop",),
    "orjson": ("--orjson",),
    "uvloop+orjson": ("--uvloop", "--orjson"),
}
CONCURRENCY = 32


def rotated(names: list[str], k: int) -> list[str]:
    k %= len(names)
    return names[k:] + names[:k]


def ratio_line(title: str, unit: str, medians: dict[str, float], fmt: str = "{:.0f}") -> str:
    base = medians["stock"]
    parts = [f"stock {fmt.format(base)}{unit}"]
    for name, value in medians.items():
        if name != "stock":
            parts.append(f"{name} {fmt.format(value)}{unit} (×{value / base:.2f})")
    return f"{title}: " + "  |  ".join(parts)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--latency-sends", type=int, default=100)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.backend == "postgres" and not await pg_available():
        print("variants: PostgreSQL not reachable, skipped")
        return

    servers: dict[str, Server] = {}
    practices: dict[str, Practice] = {}
    databases: list[str] = []
    bare: dict[str, Server] = {}
    try:
        for name, flags in VARIANTS.items():
            url = None
            if args.backend == "postgres":
                url = await fresh_pg_database()
                databases.append(url)
            env = base_env(Path(tempfile.mkdtemp(prefix=f"bench-variant-{name}-")), url)
            await run_cli(env, "migrate")
            servers[name] = await start_securemsg(env, "--no-worker", variant=flags)
            practices[name] = await make_practice(env, servers[name].url)
        for loop in ("asyncio", "uvloop"):
            bare[loop] = await start_bare(loop)
        for name, server in servers.items():  # warm up
            p = practices[name]
            await blast(server.url, p.sender_token, p.conversation_id, 300, 8)
        for server in bare.values():
            await blast(server.url, "x", 1, 300, 8)

        rates: dict[str, list[float]] = {n: [] for n in servers}
        cpu: dict[str, list[float]] = {n: [] for n in servers}
        bare_rates: dict[str, list[float]] = {n: [] for n in bare}
        spread: dict[str, list[float]] = {n: [] for n in servers}
        to_ws: dict[str, list[float]] = {n: [] for n in servers}
        for r in range(args.rounds):
            for name in rotated(list(servers), r):
                server, p = servers[name], practices[name]
                before = cpu_s(server.proc.pid)
                rate, _ = await blast(
                    server.url, p.sender_token, p.conversation_id, args.messages, CONCURRENCY
                )
                cpu[name].append((cpu_s(server.proc.pid) - before) * 1000 / args.messages)
                rates[name].append(rate)
            for loop in rotated(list(bare), r):
                bare_rates[loop].append((await blast(bare[loop].url, "x", 1, args.messages, CONCURRENCY))[0])
            for name in rotated(list(servers), r):
                server, p = servers[name], practices[name]
                spread[name].append(
                    await many_sockets(
                        server.url + "/api/v1/ws",
                        {"Authorization": f"Bearer {p.recipient_token}"},
                        f"{server.url}/api/v1/conversations/{p.conversation_id}/messages",
                        {"Authorization": f"Bearer {p.sender_token}"},
                        args.sockets,
                    )
                    * 1000
                )
            for name in rotated(list(servers), r):
                to_ws[name].append(
                    percentile(await end_to_end(servers[name].url, practices[name], args.latency_sends), 50)
                    * 1000
                )
    finally:
        for server in [*servers.values(), *bare.values()]:
            await server.stop()
        for url in databases:
            await drop_pg_database(url)

    def med(values: dict[str, list[float]]) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in values.items()}

    b = args.backend
    n = args.rounds
    print(ratio_line(f"{b:8s} send c={CONCURRENCY}, median of {n}", " msg/s", med(rates)))
    print(ratio_line(f"{b:8s} send c={CONCURRENCY}, server CPU per send", " ms", med(cpu), "{:.3f}"))
    bare_med = med(bare_rates)
    print(
        f"{b:8s} bare aiohttp c={CONCURRENCY}, median of {n}: asyncio {bare_med['asyncio']:.0f} req/s  |  "
        f"uvloop {bare_med['uvloop']:.0f} req/s (×{bare_med['uvloop'] / bare_med['asyncio']:.2f})"
    )
    print(
        ratio_line(f"{b:8s} one event to {args.sockets} sockets, median of {n}", " ms", med(spread), "{:.1f}")
    )
    print(ratio_line(f"{b:8s} send → websocket p50, median of {n}", " ms", med(to_ws), "{:.2f}"))
    print(
        f"{b:8s} every round (in its order): "
        + "; ".join(f"{k} {' '.join(f'{x:.0f}' for x in v)}" for k, v in rates.items())
        + " msg/s"
    )


if __name__ == "__main__":
    asyncio.run(main())
