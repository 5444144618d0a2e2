"""Realtime fan-out to websockets (docs/api.md §4).

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
what was sent through gateway B. A request never waits on Redis for that: `publish` puts the event in a
bounded queue and returns, and one publisher task sends what is queued: the events queued meanwhile go as
one relay message (a JSON array, `pack`), so under load each process publishes, and every process decodes,
one message per batch rather than one per event (bench/send.py, `--processes`).
Every Redis call gives up after SECUREMSG_REDIS_TIMEOUT_S, and then the events are delivered to this
process's sockets only. Should the queue fill (Redis slow or away for long), an event is dropped with a
log line and counted (`dropped_publish`): the messages themselves are stored, and clients catch up through
the API as after a reconnect.

`securemsg serve --processes N` on PostgreSQL without Redis (gateway.procs) uses `PgHub`: the same, through
PostgreSQL's LISTEN/NOTIFY on one dedicated connection per process. A notification carries at most
NOTIFY_LIMIT bytes; an event larger than that (a long message) reaches this process's sockets only, with a
log line, and the others' clients catch up through the API.

R27: what ends access closes the sockets it was behind, in every process, within two seconds, with code
ACCESS_ENDED (4401) and nothing more sent. Each socket knows the token (bearer token or session) it was
opened with, and two paths re-check it against the database, so nothing rests on one event arriving:
- `access_changed(participant_ids)`, called after a change that may end someone's access (sign-out,
  password change, deactivation, messaging or portal access off), reaches every process (through the same
  Redis channel as the events, so it arrives before any event published after it); each re-checks that
  participant's sockets at once, holding back their frames until the answer, so a frame published after
  the change is never sent on a socket whose access the change ended;
- every RECHECK_EVERY_S each process re-checks all the sockets it holds in one query (none when it holds
  none): this alone bounds the delay, for a lost event, a token that simply expired, or a change made
  straight in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from aiohttp import WSCloseCode, web

from inbox import db

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256
QUEUE_BYTES = 4 << 20
SEND_TIMEOUT_S = 10.0
WATCH_EVERY_S = 1.0
CLOSE_TIMEOUT_S = 2.0
CHANNEL = "securemsg:events"  # + ":" + the deployment's scope (redis_scope): one channel per database
PUBLISH_QUEUE_LIMIT = 10_000  # events waiting for Redis
PUBLISH_BATCH = 500  # events sent in one round trip
RELAY_MESSAGE_BYTES = 256 << 10  # events packed into one Redis message up to this size (`pack`)
WARN_EVERY_S = 30.0
RECHECK_EVERY_S = 1.0
PG_CHANNEL = "securemsg_events"
NOTIFY_LIMIT = 7999  # PostgreSQL's payload limit is 8000 bytes, the terminating zero included
ACCESS_ENDED = 4401  # the close code when the access behind a socket has ended (docs/api.md §4)

# token ids → {token id: why its access ended} for those that no longer give access (`inbox.accounts`)
CredentialCheck = Callable[[Collection[int]], Awaitable[dict[int, str]]]


class Subscriber:
    __slots__ = (
        "participant_id",
        "ws",
        "transport",
        "token_id",
        "queue",
        "queued_bytes",
        "task",
        "sending_since",
        "holds",
        "gate",
        "close_code",
        "close_reason",
        "closing",
        "started",
    )

    def __init__(
        self,
        participant_id: int,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None = None,
        token_id: int | None = None,
    ) -> None:
        self.participant_id = participant_id
        self.ws = ws
        self.transport = transport  # to cut a client off that does not even take the close frame
        self.token_id = token_id  # the credential behind the socket, re-checked for R27
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self.queued_bytes = 0
        self.task: asyncio.Task[None] | None = None
        self.sending_since: float | None = None  # loop time the write in progress began
        self.holds = 0  # access checks under way; frames wait while there are any
        self.gate = asyncio.Event()
        self.gate.set()
        self.close_code: int = WSCloseCode.GOING_AWAY
        self.close_reason = ""
        self.closing = False  # the writer is sending the close frame: not to be cancelled any more
        self.started = False

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
        if self.task is None:
            return
        if self.started:
            self.task.cancel()
        else:
            # A task cancelled before its first step never runs its `finally`, so the socket would not be
            # closed: a writer yet to start finds this stop mark (no frame is empty) instead.
            self.queue.put_nowait("")

    def hold(self) -> None:
        """Keep frames back until `release` (while the access behind the socket is being checked)."""
        self.holds += 1
        self.gate.clear()

    def release(self) -> None:
        self.holds = max(0, self.holds - 1)
        if not self.holds:
            self.gate.set()

    def end_access(self, reason: str) -> None:
        """R27: nothing queued goes out any more; the socket closes with ACCESS_ENDED and `reason`."""
        self.close_code = ACCESS_ENDED
        self.close_reason = reason
        self.cut_off()

    async def run_writer(self) -> None:
        loop = asyncio.get_running_loop()
        self.started = True
        try:
            while True:
                frame = await self.queue.get()
                if not frame:
                    break  # the stop mark of `cut_off`
                self.queued_bytes -= len(frame)
                if not self.gate.is_set():
                    await self.gate.wait()  # an access check is under way; if it fails, we are cancelled
                self.sending_since = loop.time()  # the hub's watchdog cuts off a write that hangs
                await self.ws.send_str(frame)
                self.sending_since = None
        except (ConnectionError, RuntimeError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self.closing = True
            await self._close()

    async def _close(self) -> None:
        closed = self.ws.closed
        if not closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    closed = await self.ws.close(code=self.close_code, message=self.close_reason.encode())
        if not closed and self.transport is not None:
            self.transport.abort()


class Hub:
    def __init__(self, check: CredentialCheck | None = None) -> None:
        self._subs: dict[int, set[Subscriber]] = {}
        self.dropped_slow = 0
        self.ended_access = 0
        self._watchdog: asyncio.Task[None] | None = None
        self._check = check  # without one (a bare hub), sockets are not re-checked
        self._rechecker: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[int]] = set()
        self._check_failing = False

    def subscribe(
        self,
        participant_id: int,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None = None,
        token_id: int | None = None,
    ) -> Subscriber:
        sub = Subscriber(participant_id, ws, transport, token_id)
        sub.task = asyncio.create_task(sub.run_writer())
        self._subs.setdefault(participant_id, set()).add(sub)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch(), name="securemsg-ws-watchdog")
        if self._check is not None and (self._rechecker is None or self._rechecker.done()):
            self._rechecker = asyncio.create_task(self._recheck_all(), name="securemsg-ws-access")
        return sub

    # --- R27: access that ends closes the socket ------------------------------------------------------

    async def admit(self, sub: Subscriber) -> bool:
        """Check a new socket's access once before anything is sent on it (frames published meanwhile
        wait): a token may be valid for HTTP while its participant may not take part (R3, R4). False when
        the socket is being closed with ACCESS_ENDED."""
        sub.hold()
        if not await self._recheck([sub], held=True):
            return True
        if sub.task is not None:
            await asyncio.wait({sub.task})  # its close frame (4401) is out before the handler returns
        return False

    async def access_changed(self, participant_ids: Iterable[int]) -> None:
        """Call after any change that may end these participants' access. Every process re-checks their
        sockets at once; frames published from now on wait for the answer."""
        self.recheck_local(participant_ids)

    def recheck_local(self, participant_ids: Iterable[int]) -> None:
        subs = [sub for pid in set(participant_ids) for sub in self._subs.get(pid, ())]
        if not subs or self._check is None:
            return
        for sub in subs:
            sub.hold()  # now, before any later publish: what comes after the change waits for the answer
        task = asyncio.create_task(self._recheck(subs, held=True))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _recheck_all(self) -> None:
        """The periodic re-check: every socket of this process, one query per tick, none without sockets."""
        while self._subs:
            await asyncio.sleep(RECHECK_EVERY_S)
            await self._recheck([sub for subs in self._subs.values() for sub in subs])

    async def _recheck(self, subs: list[Subscriber], *, held: bool = False) -> int:
        """Close every one of `subs` whose credential no longer gives access; `held` subs are released
        after the answer (those that stay open send what waited). Returns how many were closed."""
        closed = 0
        try:
            ids = {sub.token_id for sub in subs if sub.token_id is not None}
            if self._check is None or not ids:
                return 0
            try:
                ended = await self._check(ids)
            except Exception as exc:
                # The database did not answer: keep the sockets (HTTP fails meanwhile anyway) and ask again
                # on the next tick, rather than close every socket on a blip.
                if not self._check_failing:
                    log.warning("websocket access re-check failed (%s); will retry", type(exc).__name__)
                self._check_failing = True
                return 0
            self._check_failing = False
            for sub in subs:
                why = ended.get(sub.token_id) if sub.token_id is not None else None
                if why is not None and sub in self._subs.get(sub.participant_id, ()):
                    self._forget(sub)
                    sub.end_access(why)
                    closed += 1
            self.ended_access += closed
            return closed
        finally:
            if held:
                for sub in subs:
                    sub.release()

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
            if not sub.closing:  # cancelling it mid-close would lose the close frame (and its code)
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
        for task in (self._watchdog, self._rechecker, *self._checks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class _RelayHub(Hub):
    """What RedisHub and PgHub share: a request only queues its event (`publish`) and one task sends what
    is queued in batches (`_send`); what comes back from the relay (`_received`) is delivered to this
    process's sockets, or is an access notice (R27) from another process. When the relay does not take a
    batch, its events go to this process's sockets only; a full queue drops an event with a log line and a
    count (`dropped_publish`); clients catch up through the API as after a reconnect."""

    relay = "the relay"  # its name in log lines

    def __init__(self, check: CredentialCheck | None, queue_limit: int) -> None:
        super().__init__(check)
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(queue_limit)
        self._publisher: asyncio.Task[None] | None = None
        self.dropped_publish = 0  # events dropped because the queue was full
        self._warned_at: dict[str, float] = {}
        self._origin = os.urandom(8).hex()  # this process, so it skips its own access notices
        self.malformed = 0  # messages on the channel that securemsg did not write

    def _warn_now(self, what: str) -> bool:
        """At most one log line per WARN_EVERY_S for each kind of trouble (an outage is not a flood)."""
        now = time.monotonic()
        if now - self._warned_at.get(what, -WARN_EVERY_S) < WARN_EVERY_S:
            return False
        self._warned_at[what] = now
        return True

    def _start_publisher(self, name: str) -> None:
        self._publisher = asyncio.create_task(self._publish_queued(), name=name)

    async def _send(self, messages: list[str]) -> None:
        raise NotImplementedError

    def _received(self, raw: str | bytes) -> None:
        try:
            data = json.loads(raw)
            items = data if isinstance(data, list) else [data]  # a packed batch, or one item
            parsed = [_relay_item(item) for item in items]
        except (ValueError, TypeError, KeyError):
            # Not written by securemsg (someone else publishing on the channel): skipped, counted and said
            # once in a while. Raising here would make the Redis listener reconnect, losing the events
            # that cross meanwhile.
            self.malformed += 1
            if self._warn_now("malformed"):
                log.warning(
                    "realtime: skipped a message on %s's channel that securemsg did not write (%d so far)",
                    self.relay,
                    self.malformed,
                )
            return
        for kind, ids, rest in parsed:
            if kind == "a":  # an access notice (R27), not an event
                if rest != self._origin:
                    self.recheck_local(ids)
            else:
                self.deliver_local(ids, rest)

    async def publish(self, recipients: Iterable[int], payload: dict[str, Any]) -> None:
        """Queue the event for the relay and return at once (see the module docstring)."""
        self._enqueue(json.dumps({"r": list(recipients), "p": payload}, separators=(",", ":")))

    def _enqueue(self, message: str) -> None:
        try:
            self._outgoing.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped_publish += 1
            if self._warn_now("full"):
                log.warning(
                    "realtime: the queue of events for %s is full; event dropped (%d so far); clients "
                    "catch up through the API",
                    self.relay,
                    self.dropped_publish,
                )

    async def _publish_queued(self) -> None:
        while True:
            batch = [await self._outgoing.get()]
            while len(batch) < PUBLISH_BATCH and not self._outgoing.empty():
                batch.append(self._outgoing.get_nowait())
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The messages themselves are stored; live delivery is best effort. Deliver here at least.
                if self._warn_now("failed"):
                    log.warning(
                        "realtime: publishing to %s failed (%s); delivering to local sockets only",
                        self.relay,
                        type(exc).__name__,
                    )
                for message in batch:
                    data = json.loads(message)
                    self.deliver_local(data["r"], data["p"])

    def _notice(self, ids: list[int]) -> str:
        return json.dumps({"a": ids, "o": self._origin}, separators=(",", ":"))

    async def _send_notice(self, notice: str) -> None:
        try:
            # Bounded: the caller (a sign-out) waits for this, and the periodic re-check is the fallback.
            async with asyncio.timeout(RECHECK_EVERY_S):
                await self._send([notice])
        except Exception as exc:
            # The other processes' periodic re-check still closes those sockets within RECHECK_EVERY_S.
            log.warning(
                "realtime: publishing an access change to %s failed (%s)", self.relay, type(exc).__name__
            )

    async def _stop(self, *tasks: asyncio.Task[None] | None) -> None:
        for task in (*tasks, self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await super().close()


def _relay_item(item: Any) -> tuple[str, list[int], Any]:
    """One item of a relay message as ("a", participant ids, origin) for an access notice or ("e", recipients,
    payload) for an event; ValueError, TypeError or KeyError when it is neither."""
    if not isinstance(item, dict):
        raise TypeError("not an object")
    kind, key = ("a", "a") if "a" in item else ("e", "r")
    ids = item[key]
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValueError("ids")
    if kind == "a":
        return kind, ids, item.get("o")
    payload = item["p"]
    if not isinstance(payload, dict):
        raise TypeError("payload")
    return kind, ids, payload


def pack(items: list[str], limit: int) -> list[str]:
    """Items (each one JSON object: an event or an access notice) joined into as few relay messages as fit
    in `limit` bytes each, in their order: each message a JSON array. An item larger than `limit` on its own
    goes alone (as a one-item array); the caller decides whether such an item may be sent at all. The items
    are ASCII (json.dumps escapes the rest), so their length is their size in bytes."""
    messages: list[str] = []
    chunk: list[str] = []
    size = 2  # the brackets
    for item in items:
        if chunk and size + len(item) + 1 > limit:
            messages.append("[" + ",".join(chunk) + "]")
            chunk, size = [], 2
        chunk.append(item)
        size += len(item) + (1 if len(chunk) > 1 else 0)
    if chunk:
        messages.append("[" + ",".join(chunk) + "]")
    return messages


def redis_scope(database_url: str) -> str:
    """What keeps one deployment's Redis keys and channels apart from another's on a shared Redis: its
    database (every process of one deployment uses the same one)."""
    return hashlib.sha256(database_url.encode()).hexdigest()[:12]


class RedisHub(_RelayHub):
    """Fan-out through Redis pub/sub; reconnects by itself after a Redis restart."""

    relay = "Redis"

    def __init__(
        self,
        url: str,
        check: CredentialCheck | None = None,
        *,
        timeout_s: float = 0.5,
        queue_limit: int = PUBLISH_QUEUE_LIMIT,
        channel: str = CHANNEL,
    ) -> None:
        super().__init__(check, queue_limit)
        import redis.asyncio as aioredis

        # Pub/sub channels are one namespace for the whole Redis server, whatever database number the URL
        # picks: two deployments sharing a Redis must not hear each other's events (row ids repeat across
        # databases, so a socket would get another practice's message).
        self.channel = channel

        self.timeout_s = timeout_s
        # Commands (publish, ping) give up after timeout_s; the listener's blocking wait for the next
        # event is not a command and is not cut short by it.
        self._redis = aioredis.from_url(
            url, health_check_interval=10, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())
        self._start_publisher("securemsg-redis-publisher")

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for msg in pubsub.listen():
                        if msg.get("type") == "message":
                            self._received(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or restarting: try again shortly, keep the process
                log.warning(
                    "redis pub/sub listener lost its connection (%s); reconnecting", type(exc).__name__
                )
                await asyncio.sleep(0.5)

    async def _send(self, messages: list[str]) -> None:
        async with asyncio.timeout(2 * self.timeout_s):
            packed = pack(messages, RELAY_MESSAGE_BYTES)
            if len(packed) == 1:
                await self._redis.publish(self.channel, packed[0])
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                for message in packed:
                    pipe.publish(self.channel, message)
                await pipe.execute()

    async def access_changed(self, participant_ids: Iterable[int]) -> None:
        ids = sorted(set(participant_ids))
        self.recheck_local(ids)
        await self._send_notice(self._notice(ids))

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2 * self.timeout_s):
                return bool(await self._redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self._stop(self._listener)
        await self._redis.aclose()


class PgHub(_RelayHub):
    """Fan-out between the processes of one machine through PostgreSQL LISTEN/NOTIFY, for `serve
    --processes N` without Redis. Like RedisHub: a request only queues its event; one task sends what is
    queued on a dedicated connection, which also LISTENs, so every process (this one too) delivers the
    events in the order they were sent. A lost connection is made again by itself; meanwhile events reach
    this process's sockets only, and the periodic re-check keeps R27."""

    relay = "PostgreSQL"

    def __init__(
        self,
        url: str,
        check: CredentialCheck | None = None,
        *,
        timeout_s: float = 10.0,
        queue_limit: int = PUBLISH_QUEUE_LIMIT,
    ) -> None:
        super().__init__(check, queue_limit)
        self._connect_args = db.connect_args(url)
        self.timeout_s = timeout_s
        self._conn: Any = None  # asyncpg.Connection while connected
        self._lost = asyncio.Event()
        self._sending = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None
        self.too_large = 0  # events too large for a notification: delivered in this process only

    async def start(self) -> None:
        await self._connect()  # the first time, a failure is the caller's: the server does not start
        self._keeper = asyncio.create_task(self._keep_connected(), name="securemsg-pg-listener")
        self._start_publisher("securemsg-pg-publisher")

    async def _connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(**self._connect_args, timeout=self.timeout_s)
        self._lost.clear()
        conn.add_termination_listener(lambda _conn: self._lost.set())
        await conn.add_listener(PG_CHANNEL, self._on_notify)
        self._conn = conn

    async def _keep_connected(self) -> None:
        while True:
            await self._lost.wait()
            self._conn = None
            log.warning("realtime: the LISTEN connection to PostgreSQL was lost; reconnecting")
            while True:
                await asyncio.sleep(0.5)
                try:
                    await self._connect()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self._warn_now("reconnect"):
                        log.warning("realtime: PostgreSQL LISTEN reconnect failed (%s)", type(exc).__name__)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._received(payload)

    async def publish(self, recipients: Iterable[int], payload: dict[str, Any]) -> None:
        ids = list(recipients)
        message = json.dumps({"r": ids, "p": payload}, separators=(",", ":"))
        if len(message.encode()) + 2 > NOTIFY_LIMIT:  # + the brackets of its relay message (`pack`)
            self.too_large += 1
            if self._warn_now("large"):
                log.warning(
                    "realtime: an event of %d bytes does not fit a PostgreSQL notification; only this "
                    "process's sockets get it, the others' clients catch up through the API (%d so far)",
                    len(message.encode()),
                    self.too_large,
                )
            self.deliver_local(ids, payload)
            return
        self._enqueue(message)

    async def _send(self, messages: list[str]) -> None:
        conn = self._conn
        if conn is None:
            raise ConnectionError("no LISTEN connection")
        async with self._sending, asyncio.timeout(self.timeout_s):  # one statement at a time on a connection
            packed = pack(messages, NOTIFY_LIMIT)
            if len(packed) == 1:
                await conn.execute("SELECT pg_notify($1, $2)", PG_CHANNEL, packed[0])
            else:
                await conn.executemany("SELECT pg_notify($1, $2)", [(PG_CHANNEL, m) for m in packed])

    async def access_changed(self, participant_ids: Iterable[int]) -> None:
        ids = sorted(set(participant_ids))
        self.recheck_local(ids)
        notice = self._notice(ids)
        if len(notice.encode()) + 2 > NOTIFY_LIMIT:
            return  # thousands of people at once: the others' periodic re-check closes their sockets
        await self._send_notice(notice)

    async def close(self) -> None:
        await self._stop(self._keeper)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._conn.close()
