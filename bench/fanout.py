"""Realtime fan-out against a running `securemsg serve`.

    python -m bench.fanout [--sockets 1000] [--idle 10000]

1. End-to-end latency from POST (send) to the recipient's websocket frame, at light load (sequential sends),
   beside the same round trip through a bare aiohttp websocket echo (the ceiling): goals p50 ≤ 3 ms, p99 ≤ 10 ms.
2. One event to N connected sockets (N team members in one group conversation): time from the send until the
   last socket has the frame; goal ≤ 50 ms for 1,000.
3. RSS of the server process with many idle sockets; goal: 10,000 under 1 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bench.common import (
    base_env,
    make_practice,
    percentile,
    run_cli,
    start_bare,
    start_securemsg,
    summary_ms,
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def end_to_end(url: str, practice, n: int) -> list[float]:
    latencies = []
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            url + "/api/v1/ws", headers={"Authorization": f"Bearer {practice.recipient_token}"}
        )
        await ws.receive()
        path = f"{url}/api/v1/conversations/{practice.conversation_id}/messages"
        headers = {"Authorization": f"Bearer {practice.sender_token}"}
        for _ in range(n):
            marker = uuid.uuid4().hex
            t0 = time.perf_counter()
            async with http.post(path, json={"body": f"fanout {marker}"}, headers=headers) as resp:
                await resp.read()
            while True:
                frame = json.loads((await ws.receive(timeout=10)).data)
                if frame["type"] == "message.created" and frame["message"]["body"].endswith(marker):
                    break
            latencies.append(time.perf_counter() - t0)
        await ws.close()
    return latencies


async def bare_ws_round_trip(n: int) -> list[float]:
    """Ceiling: an HTTP POST to a bare aiohttp server that pushes a frame to a connected websocket."""
    from aiohttp import web

    sockets: list[web.WebSocketResponse] = []

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sockets.append(ws)
        async for _ in ws:
            pass
        return ws

    async def post(request: web.Request) -> web.Response:
        data = await request.json()
        for ws in sockets:
            await ws.send_str(json.dumps({"type": "message.created", "message": data}))
        return web.json_response(data, status=201)

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_post("/send", post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    latencies = []
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url + "/ws")
        for _ in range(n):
            t0 = time.perf_counter()
            async with http.post(url + "/send", json={"body": "x"}) as resp:
                await resp.read()
            await ws.receive(timeout=10)
            latencies.append(time.perf_counter() - t0)
        await ws.close()
    await runner.cleanup()
    return latencies


async def many_sockets(
    connect: str, headers: dict[str, str], send: str, send_headers: dict[str, str], count: int
) -> float:
    """`count` sockets open at `connect`; time from one POST to `send` until the last of them has the
    `message.created` frame. Against securemsg the sockets are the recipient's (a conversation holds at most
    50 people, so they are one person's many tabs and devices: the hub's fan-out work is the same)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = []
        for start in range(0, count, 250):
            sockets += await asyncio.gather(
                *(
                    http.ws_connect(connect, headers=headers, heartbeat=None)
                    for _ in range(min(250, count - start))
                )
            )
        await asyncio.gather(*(ws.receive() for ws in sockets))

        async def wait_for(ws) -> float:
            while True:
                msg = await ws.receive(timeout=30)
                if '"message.created"' in msg.data:
                    return time.perf_counter()

        waiters = [asyncio.create_task(wait_for(ws)) for ws in sockets]
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        async with http.post(send, json={"body": "to every socket"}, headers=send_headers) as resp:
            await resp.read()
        done = await asyncio.gather(*waiters)
        await asyncio.gather(*(ws.close() for ws in sockets))
        return max(done) - t0


async def fan_out_to_many(
    url: str, bare_url: str, practice, count: int, rounds: int = 3
) -> tuple[float, float]:
    """Ours and the bare fan-out in turn, `rounds` times each; the median of each."""
    ours, bare = [], []
    for _ in range(rounds):
        ours.append(
            await many_sockets(
                url + "/api/v1/ws",
                {"Authorization": f"Bearer {practice.recipient_token}"},
                f"{url}/api/v1/conversations/{practice.conversation_id}/messages",
                {"Authorization": f"Bearer {practice.sender_token}"},
                count,
            )
        )
        bare.append(await many_sockets(bare_url + "/ws", {}, bare_url + "/broadcast", {}, count))
    return statistics.median(ours), statistics.median(bare)


async def idle_sockets(url: str, pid: int, token: str, count: int) -> tuple[float, float]:
    before = rss_mb(pid)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = []
        for start in range(0, count, 500):
            batch = await asyncio.gather(
                *(
                    http.ws_connect(
                        url + "/api/v1/ws", headers={"Authorization": f"Bearer {token}"}, heartbeat=None
                    )
                    for _ in range(min(500, count - start))
                )
            )
            sockets += batch
        await asyncio.sleep(1)
        after = rss_mb(pid)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return before, after


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=300)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=10000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    var = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    env = base_env(var)
    await run_cli(env, "migrate")
    server = await start_securemsg(env, "--no-worker")
    out = []
    try:
        practice = await make_practice(env, server.url)
        ours = await end_to_end(server.url, practice, args.sends)
        bare = await bare_ws_round_trip(args.sends)
        p50, p99 = percentile(ours, 50) * 1000, percentile(ours, 99) * 1000
        out.append(f"send → websocket  securemsg {summary_ms(ours)}  |  bare {summary_ms(bare)}")
        out.append(f"  goal p50 ≤ 3 ms, p99 ≤ 10 ms: {'met' if p50 <= 3 and p99 <= 10 else 'NOT met'}")
        bare_server = await start_bare()
        try:
            spread, bare_spread = await fan_out_to_many(server.url, bare_server.url, practice, args.sockets)
        finally:
            await bare_server.stop()
        out.append(
            f"one event to {args.sockets} sockets: last frame after {spread * 1000:.1f} ms  |  bare fan-out "
            f"{bare_spread * 1000:.1f} ms (medians of 3; goal ≤ 50 ms: {'met' if spread <= 0.05 else 'NOT met'})"
        )
        before, after = await idle_sockets(server.url, server.proc.pid, practice.recipient_token, args.idle)
        out.append(
            f"{args.idle} idle sockets: server RSS {before:.0f} MB → {after:.0f} MB "
            f"({(after - before) * 1024 / args.idle:.1f} KB per socket; goal < 1024 MB: {'met' if after < 1024 else 'NOT met'})"
        )
    finally:
        await server.stop()
    print("\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
