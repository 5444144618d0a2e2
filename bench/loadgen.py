"""The load generator of bench/send.py and bench/variants.py: HTTP/1.1 keep-alive POSTs over plain asyncio
protocols, one request at a time per connection, with the request bytes built by hand.

Why not aiohttp's client: on two CPUs the generator shares the machine with the servers it measures. aiohttp's
client spends about 0.2 ms of CPU per request here (docs/benchmarks.md, run G), a quarter of what a send
costs the server: CPU a second gateway process could not have. This one spends a fraction of that, so the
figures measure the servers rather than the client. The same generator
drives our server and the bare ceiling, so their ratio stays fair.

What it checks: the status line of every answer (a 200/201 is expected) and a Content-Length to find the
answer's end (aiohttp sends one with every JSON answer); anything else stops the run with an error.
"""

from __future__ import annotations

import asyncio
import os
import time
from urllib.parse import urlsplit

OK = (200, 201)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `request` writes one request and waits for its whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            waiter.set_exception(RuntimeError(f"an answer without Content-Length: {head[:200]!r}"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        del self.buffer[:total]
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"the server closed the connection ({exc})"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def blast(
    url: str | list[str], token: str, conv_id: int | list[int], n: int, concurrency: int
) -> tuple[float, list[float]]:
    """Send n messages with `concurrency` connections; returns (messages/s, latencies in seconds). Given
    lists, connection k goes to server k mod len(urls) and sends into conversation k mod len(conv_ids).
    Each message has its own `client_msg_id` (a random prefix for the run and a counter)."""
    urls = url if isinstance(url, list) else [url]
    convs = conv_id if isinstance(conv_id, list) else [conv_id]
    loop = asyncio.get_running_loop()
    run = os.urandom(6).hex()
    counter = iter(range(n))
    latencies: list[float] = []
    connections: list[_Connection] = []

    async def open_one(k: int) -> tuple[_Connection, bytes]:
        parts = urlsplit(urls[k % len(urls)])
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        _, conn = await loop.create_connection(_Connection, host, port)
        connections.append(conn)
        head = (
            f"POST /api/v1/conversations/{convs[k % len(convs)]}/messages HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        return conn, head

    async def worker(conn: _Connection, head: bytes) -> None:
        for i in counter:
            body = b'{"body":"benchmark message %d","client_msg_id":"%s%010d"}' % (i, run.encode(), i)
            t0 = time.perf_counter()
            status = await conn.request(head + b"%d\r\n\r\n" % len(body) + body)
            latencies.append(time.perf_counter() - t0)
            if status not in OK:
                raise RuntimeError(f"send answered {status}")

    opened = [await open_one(k) for k in range(concurrency)]
    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker(conn, head) for conn, head in opened))
        elapsed = time.perf_counter() - start
    finally:
        for conn in connections:
            if conn.transport is not None:
                conn.transport.close()
    return n / elapsed, latencies
