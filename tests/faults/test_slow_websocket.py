"""A websocket client that never reads cannot make a real `securemsg serve` process grow without bound.

The never-reading client does the websocket handshake over a raw TCP socket with a tiny receive buffer and
then reads nothing. Meanwhile messages with the largest frames a sender can cause (5,000 emoji: about
120 kB of JSON each) flow in conversations it is in, and a second, reading client in the same
conversations receives every one of them, so the events did flow. Sampled from /proc/PID/status, the
server's resident memory stays within a bound far below what buffering the stalled socket's events would
take, and the server cuts the stalled socket off: once the client finally reads, it finds the connection
closed rather than a stream of backlog.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from tests.faults.procs import Http, Server, create_practice, make_people, open_conversation, server_env

pytestmark = pytest.mark.slow

SENDERS = tuple(f"s{n}" for n in range(10))
PER_SENDER = 50  # under the per-sender send limit (60 a minute)
# The per-IP send limit is 300 a minute, so the senders come from two loopback addresses, half each.
SOURCES = ("127.0.0.1", "127.0.0.2")
BIG_BODY = "\U0001f600" * 4996  # the most JSON a message can turn into: ~60 kB as body, ~60 kB as body_html
GROWTH_LIMIT_KB = 20 * 1024  # the flow is ~60 MB of frames for the stalled socket; buffering it would show


async def never_reading_socket(
    server: Server, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little for us
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_until_closed(reader: asyncio.StreamReader) -> None:
    """Read what is left in flight; returns once the server has closed or cut the connection."""
    try:
        while await reader.read(1 << 16):
            pass
    except ConnectionResetError:
        pass


async def test_a_never_reading_websocket_is_cut_off_and_memory_stays_bounded(tmp_path: Path) -> None:
    server = Server(server_env(f"sqlite://{tmp_path}/db.sqlite3", tmp_path / "var"), tmp_path / "logs")
    made = await create_practice(server.env, "owner password 123")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(session, server)
            people = await make_people(http, made, ["stalled", "reader", "warm", *SENDERS], [])
            ids, tok = people.ids, people.tokens
            convs = {
                who: await open_conversation(http, tok[who], ids["stalled"], ids["reader"])
                for who in (*SENDERS, "warm")
            }
            # Warm up: the server's memory after doing this work once is the baseline.
            for i in range(20):
                await http.ok(
                    "POST",
                    f"/conversations/{convs['warm']}/messages",
                    {"body": f"{i}{BIG_BODY}"},
                    tok["warm"],
                )
            reader_ws = await session.ws_connect(
                server.url + "/api/v1/ws",
                headers={"Authorization": f"Bearer {tok['reader']}"},
                max_msg_size=0,
            )
            stalled_reader, stalled_writer = await never_reading_socket(server, tok["stalled"])
            await asyncio.sleep(0.5)
            baseline_kb = server.status("VmRSS")

            received = 0
            expected = len(SENDERS) * PER_SENDER

            async def read_everything() -> None:
                nonlocal received
                while received < expected:
                    msg = await reader_ws.receive(timeout=60)
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    if '"type":"message.created"' in msg.data:
                        received += 1

            peak_kb = baseline_kb
            flowing = True

            async def sample() -> None:
                nonlocal peak_kb
                while flowing:
                    peak_kb = max(peak_kb, server.status("VmRSS"))
                    await asyncio.sleep(0.02)

            async def sender(who: str) -> None:
                via = Http(sources[SENDERS.index(who) % len(sources)], server)
                for i in range(PER_SENDER):
                    await via.ok(
                        "POST", f"/conversations/{convs[who]}/messages", {"body": f"{i}{BIG_BODY}"}, tok[who]
                    )

            sources = [
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ip, 0))) for ip in SOURCES
            ]
            reading = asyncio.create_task(read_everything())
            sampling = asyncio.create_task(sample())
            started = time.monotonic()
            await asyncio.gather(*(sender(who) for who in SENDERS))
            for source in sources:
                await source.close()
            await asyncio.wait_for(reading, timeout=60)
            flowing = False
            await sampling
            took = time.monotonic() - started

            growth_kb = max(peak_kb, server.status("VmRSS")) - baseline_kb
            assert received == expected
            assert growth_kb < GROWTH_LIMIT_KB, f"the server grew by {growth_kb} kB in {took:.1f} s"
            # The server gave up on the stalled socket: reading now finds the end, not a backlog.
            await asyncio.wait_for(read_until_closed(stalled_reader), timeout=20)
            stalled_writer.close()
            assert (await http.reply("GET", "/healthz")).status == 200
            await reader_ws.close()
    finally:
        await server.stop()
