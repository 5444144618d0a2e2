"""The benchmarks' load generator (bench/loadgen.py) against a real aiohttp server on loopback: every request
arrives whole, with its bearer token, in its conversation and with its own client_msg_id, the answers are
read to their end on keep-alive connections, and an error answer stops the run."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from bench.loadgen import blast


async def test_every_request_arrives_whole_and_an_error_stops_the_run(aiohttp_server: Any) -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    peers: set[Any] = set()

    async def send(request: web.Request) -> web.Response:
        seen.append((request.match_info["id"], request.headers["Authorization"], await request.json()))
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        if request.match_info["id"] == "13":
            return web.json_response({"error": {"code": "not_found"}}, status=404)
        # an answer larger than one read, so the generator must wait for the rest of it
        return web.json_response({"message": {"id": len(seen), "pad": "x" * 200_000}}, status=201)

    app = web.Application()
    app.router.add_post("/api/v1/conversations/{id}/messages", send)
    server = await aiohttp_server(app)
    url = f"http://127.0.0.1:{server.port}"

    rate, latencies = await blast(url, "tok-1", [5, 6], 40, 4)
    assert rate > 0 and len(latencies) == 40
    assert len(seen) == 40 and len(peers) == 4  # four keep-alive connections, reused
    assert {who for _, who, _ in seen} == {"Bearer tok-1"}
    assert {conv for conv, _, _ in seen} == {"5", "6"}
    ids = [body["client_msg_id"] for _, _, body in seen]
    assert len(set(ids)) == 40
    assert sorted(body["body"] for _, _, body in seen) == sorted(f"benchmark message {i}" for i in range(40))

    with pytest.raises(RuntimeError, match="send answered 404"):
        await blast(url, "tok-1", 13, 5, 1)
