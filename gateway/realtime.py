"""Realtime fan-out to websockets (API.md §4).

Publishing never awaits a socket: each socket has a bounded queue drained by its own writer task, so one
slow or dead socket cannot stall the request that published, or the other sockets. A socket whose queue
fills up (a client that stopped reading) is cut off instead of letting memory grow without bound: the
queue is bounded in frames (QUEUE_LIMIT) and in bytes (QUEUE_BYTES, since one message can make a 120 kB
frame), and a write that has waited SEND_TIMEOUT_S for the client is given up too (one watchdog looks every
WATCH_EVERY_S, rather than a timer per frame: one event to a thousand sockets is a thousand writes, and the
timers were most of their cost; bench/fanout.py). Cut off means: taken
out of the hub at once with its queue emptied, sent a close frame if the client takes it within
CLOSE_TIMEOUT_S, else its TCP connection is aborted (a client that reads nothing would never take it).

Without Redis, events are delivered in this process. With `SECUREMSG_REDIS_URL`, every event goes through
one Redis pub/sub channel and each process delivers to the sockets it holds, so a socket on gateway A sees
what was sent through gateway B.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from aiohttp import WSCloseCode, web

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256
QUEUE_BYTES = 4 << 20
SEND_TIMEOUT_S = 10.0
WATCH_EVERY_S = 1.0
CLOSE_TIMEOUT_S = 2.0
CHANNEL = "securemsg:events"


class Subscriber:
    __slots__ = ("participant_id", "ws", "transport", "queue", "queued_bytes", "task", "sending_since")

    def __init__(
        self, participant_id: int, ws: web.WebSocketResponse, transport: asyncio.Transport | None = None
    ) -> None:
        self.participant_id = participant_id
        self.ws = ws
        self.transport = transport  # to cut a client off that does not even take the close frame
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self.queued_bytes = 0
        self.task: asyncio.Task[None] | None = None
        self.sending_since: float | None = None  # loop time the write in progress began

    def offer(self, frame: str) -> bool:
        """Queue a frame; False when this socket is too far behind to take it (it is to be cut off)."""
        if self.queued_bytes + len(frame) > QUEUE_BYTES and not self.queue.empty():
            return False
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        self.queued_bytes += len(frame)
        return True

    def cut_off(self) -> None:
        """Drop what is queued now (that memory is the point) and end the writer, which closes the socket."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued_bytes = 0
        if self.task is not None:
            self.task.cancel()

    async def run_writer(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await self.queue.get()
                self.queued_bytes -= len(frame)
                self.sending_since = loop.time()  # the hub's watchdog cuts off a write that hangs
                await self.ws.send_str(frame)
                self.sending_since = None
        except (ConnectionError, RuntimeError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            await self._close()

    async def _close(self) -> None:
        closed = self.ws.closed
        if not closed:
            with contextlib.suppress(Exception):
                closed = await asyncio.wait_for(
                    self.ws.close(code=WSCloseCode.GOING_AWAY), timeout=CLOSE_TIMEOUT_S
                )
        if not closed and self.transport is not None:
            self.transport.abort()


class Hub:
    def __init__(self) -> None:
        self._subs: dict[int, set[Subscriber]] = {}
        self.dropped_slow = 0
        self._watchdog: asyncio.Task[None] | None = None

    def subscribe(
        self, participant_id: int, ws: web.WebSocketResponse, transport: asyncio.Transport | None = None
    ) -> Subscriber:
        sub = Subscriber(participant_id, ws, transport)
        sub.task = asyncio.create_task(sub.run_writer())
        self._subs.setdefault(participant_id, set()).add(sub)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch(), name="securemsg-ws-watchdog")
        return sub

    async def _watch(self) -> None:
        """Cut off every socket whose current write has waited SEND_TIMEOUT_S for its client."""
        loop = asyncio.get_running_loop()
        while self._subs:
            await asyncio.sleep(WATCH_EVERY_S)
            now = loop.time()
            for subs in list(self._subs.values()):
                for sub in list(subs):
                    since = sub.sending_since
                    if since is not None and now - since >= SEND_TIMEOUT_S:
                        self._forget(sub)
                        sub.cut_off()

    def _forget(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.participant_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.participant_id]

    async def unsubscribe(self, sub: Subscriber) -> None:
        self._forget(sub)
        if sub.task is not None:
            sub.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sub.task

    def connected(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def deliver_local(self, recipients: Iterable[int], payload: dict[str, Any]) -> None:
        targets = [sub for pid in recipients for sub in self._subs.get(pid, ())]
        if not targets:
            return  # nobody connected here: no frame to build
        frame = json.dumps(payload, separators=(",", ":"))
        for sub in targets:
            if not sub.offer(frame):
                # A client that stopped reading: cut it off rather than buffer without bound.
                self.dropped_slow += 1
                self._forget(sub)
                sub.cut_off()

    async def publish(self, recipients: Iterable[int], payload: dict[str, Any]) -> None:
        self.deliver_local(recipients, payload)

    async def close_sockets(self) -> None:
        """Close every local socket (going away); their handlers then end."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                await self.unsubscribe(sub)

    async def close(self) -> None:
        await self.close_sockets()
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog


class RedisHub(Hub):
    """Fan-out through Redis pub/sub; reconnects by itself after a Redis restart."""

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url, health_check_interval=10)
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for msg in pubsub.listen():
                        if msg.get("type") != "message":
                            continue
                        data = json.loads(msg["data"])
                        self.deliver_local(data["r"], data["p"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or restarting: try again shortly, keep the process
                log.warning(
                    "redis pub/sub listener lost its connection (%s); reconnecting", type(exc).__name__
                )
                await asyncio.sleep(0.5)

    async def publish(self, recipients: Iterable[int], payload: dict[str, Any]) -> None:
        message = json.dumps({"r": list(recipients), "p": payload}, separators=(",", ":"))
        try:
            await self._redis.publish(CHANNEL, message)
        except Exception as exc:
            # The message itself is stored; live delivery is best effort. Deliver here at least.
            log.warning("redis publish failed (%s); delivering to local sockets only", type(exc).__name__)
            self.deliver_local(json.loads(message)["r"], payload)

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), timeout=2))
        except Exception:
            return False

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await super().close()
        await self._redis.aclose()
