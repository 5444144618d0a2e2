"""Pushes per second through our providers to the APNs (HTTP/2 over TLS) and FCM fakes on loopback.

    python -m bench.push [--pushes 20000]

Each fake runs in its own process. Beside each figure, the ceiling measured in the same run: for APNs, a bare
`h2` client that sends the same requests (headers, bodies, HPACK coding) on one connection without aioapns
(what the fake itself can take);
for FCM, a bare aiohttp client posting the same JSON. Goal: ≥ 5,000 pushes/s to APNs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bench.common import ROOT
from push import ApnsProvider, ApnsSettings, FcmProvider, FcmSettings, PushMessage


async def start_fake(kind: str) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    directory = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.push_fake", kind, str(directory), cwd=ROOT
    )
    for _ in range(200):
        if (directory / "info.json").exists():
            return proc, json.loads((directory / "info.json").read_text())
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{kind} fake did not start")


def messages(n: int) -> list[PushMessage]:
    return [
        PushMessage(
            token=f"{i:064x}",
            push_type="new_message",
            data={"conversation_id": str(i % 100), "link": f"securemsg://conversations/{i % 100}"},
            badge=1,
            collapse_key=f"conversation-{i % 100}",
            title="New secure message",
        )
        for i in range(n)
    ]


async def ours_apns(info: dict[str, str], n: int) -> float:
    ctx = ssl.create_default_context(cafile=info["ca"])
    settings = ApnsSettings(
        key_pem=info["key_pem"], key_id="BENCHKEY01", team_id="BENCHTEAM1", topic="org.bench.app",
        endpoint=info["url"], max_in_flight=500,
    )  # fmt: skip
    provider = ApnsProvider(settings, ssl_context=ctx)
    try:
        await provider.send(messages(50))  # connect and warm up
        batch = messages(n)
        t0 = time.perf_counter()
        result = await provider.send(batch)
        elapsed = time.perf_counter() - t0
        if len(result.delivered) != n:
            print(
                f"  apns: {n - len(result.delivered)} of {n} not delivered in one pass "
                f"(retry {len(result.retry_tokens)}, dead {len(result.dead_tokens)}, failed {len(result.failed)})"
            )
    finally:
        await provider.close()
    return len(result.delivered) / elapsed


async def bare_h2(info: dict[str, str], n: int) -> float:
    """The ceiling: raw h2 frames, one connection, up to 500 streams open, the same requests as ours_apns (the
    same headers, a fresh apns-id each, the same bodies, HPACK coded the same way), without aioapns."""
    import h2.config
    import h2.connection
    import h2.events
    import jwt as pyjwt

    from push.apns import PRIORITY_IMMEDIATE, _PlainEncoder, build_payload

    host, port = info["url"].removeprefix("https://").split(":")
    ctx = ssl.create_default_context(cafile=info["ca"])
    ctx.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.encoder = _PlainEncoder()
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    token = pyjwt.encode(
        {"iss": "BENCHTEAM1", "iat": int(time.time())},
        info["key_pem"],
        algorithm="ES256",
        headers={"kid": "BENCHKEY01"},
    )
    batch = messages(n)
    bodies = [json.dumps(build_payload(msg), ensure_ascii=False).encode() for msg in batch]
    # A careful client: wait for the server's SETTINGS (its stream limit), then never have more streams open
    # than it allows nor send more than the flow-control window holds.
    settled = False
    while not settled:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("the APNs fake closed the connection")
        settled = any(isinstance(e, h2.events.RemoteSettingsChanged) for e in conn.receive_data(data))
        writer.write(conn.data_to_send())
    limit = min(500, conn.remote_settings.max_concurrent_streams)
    done = 0
    sent = 0
    open_streams = 0
    t0 = time.perf_counter()
    while done < n:
        while sent < n and open_streams < limit and conn.outbound_flow_control_window >= len(bodies[sent]):
            msg = batch[sent]
            sid = conn.get_next_available_stream_id()
            conn.send_headers(
                sid,
                [(":method", "POST"), (":scheme", "https"), (":path", f"/3/device/{msg.token}"), ("host", host),
                 ("apns-id", str(uuid.uuid4())), ("apns-topic", "org.bench.app"),
                 ("apns-priority", str(PRIORITY_IMMEDIATE)), ("apns-collapse-id", str(msg.collapse_key)),
                 ("apns-push-type", "alert"), ("authorization", f"bearer {token}")],
            )  # fmt: skip
            conn.send_data(sid, bodies[sent], end_stream=True)
            sent += 1
            open_streams += 1
            if sent % 32 == 0:  # hand the fake work in small writes, not one per window's worth
                writer.write(conn.data_to_send())
        writer.write(conn.data_to_send())
        await writer.drain()
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("the APNs fake closed the connection")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.StreamEnded):
                done += 1
                open_streams -= 1
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise ConnectionError(f"the APNs fake ended the connection: {event.error_code!r}")
        writer.write(conn.data_to_send())
    elapsed = time.perf_counter() - t0
    writer.close()
    return n / elapsed


async def ours_fcm(info: dict[str, str], n: int) -> float:
    provider = FcmProvider(
        FcmSettings(credentials_file=info["credentials"], endpoint=info["url"], max_in_flight=100)
    )
    try:
        await provider.send(messages(20))
        t0 = time.perf_counter()
        result = await provider.send(messages(n))
        elapsed = time.perf_counter() - t0
        if len(result.delivered) != n:
            print(
                f"  fcm: {n - len(result.delivered)} of {n} not delivered in one pass "
                f"(retry {len(result.retry_tokens)}, dead {len(result.dead_tokens)}, failed {len(result.failed)})"
            )
    finally:
        await provider.close()
    return len(result.delivered) / elapsed


async def bare_fcm(info: dict[str, str], n: int) -> float:
    """The ceiling: plain aiohttp POSTs of the same JSON with a token fetched once, 100 in flight."""
    provider = FcmProvider(FcmSettings(credentials_file=info["credentials"], endpoint=info["url"]))
    await provider.send(messages(1))
    token = await provider._tokens.get()  # the bench reuses the provider's token: only the POSTs are timed
    await provider.close()
    sem = asyncio.Semaphore(100)
    url = info["url"] + "/v1/projects/securemsg-test/messages:send"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:

        async def one(i: int) -> None:
            async with (
                sem,
                http.post(
                    url,
                    json={"message": {"token": f"t{i}", "data": {"type": "new_message"}}},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp,
            ):
                await resp.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=20000)
    args = parser.parse_args()
    out = []
    proc, info = await start_fake("apns")
    try:
        ours, ceiling = [], []
        for _ in range(2):
            ours.append(await ours_apns(info, args.pushes))
            ceiling.append(await bare_h2(info, args.pushes))
        best = max(ours)
        out.append(
            f"APNs  securemsg {best:8.0f} pushes/s  |  bare h2 {max(ceiling):8.0f} req/s  |  ratio {best / max(ceiling):.2f}"
            f"  (goal ≥ 5,000/s: {'met' if best >= 5000 else 'NOT met'})"
        )
    finally:
        proc.terminate()
        await proc.wait()
    proc, info = await start_fake("fcm")
    try:
        n = max(1000, args.pushes // 4)
        ours_rate, bare_rate = await ours_fcm(info, n), await bare_fcm(info, n)
        out.append(
            f"FCM   securemsg {ours_rate:8.0f} pushes/s  |  bare aiohttp {bare_rate:8.0f} req/s  |  ratio {ours_rate / bare_rate:.2f}"
        )
    finally:
        proc.terminate()
        await proc.wait()
    print("\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
