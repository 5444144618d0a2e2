"""Metrics in Prometheus' text format: GET /metrics on a listener of its own (docs/operations.md).

Off unless SECUREMSG_METRICS_LISTEN names an address (`127.0.0.1:9108`): the public listener never serves
/metrics, whatever is set, so a metrics scraper needs no credentials and the world cannot read the
server's load. Every process (a gateway, a worker) serves its own; `serve --processes N`'s supervisor
serves its N children's on the one address, each sample labelled with its child's index (`merge_processes`).

Cost on the request and send paths: an integer added to a dict entry, in the event loop's own thread, so no
lock and no allocation beyond the first time a label set is seen. prometheus-client's own metric objects
take a lock on each increment; here they are built only when scraped, from these counts (`collect`). What
is cheaper asked than counted — the outbox's backlog (one grouped query on the (status, due_at) index), the
connection pool, the websockets, the realtime publisher's drops — is read at scrape time (`refresh`).

Labels hold only what the code itself names: route patterns (`/api/v1/conversations/{id}`, never a path),
methods, status codes, outbox kinds, push platforms and fixed failure reasons. Never an id, an address, a
name or a message: nothing a label says is about a person. Each app has its own registry, so several apps
in one process (tests) keep their own counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from gateway.config import ConfigError
from gateway.keys import CONFIG, CTX, DISPATCHER, HUB, SERVICES
from gateway.realtime import PgHub, RedisHub
from inbox import db, outbox, retention

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # inbox.store.groupcommit.MAX_BATCH is 64
# Any other method a client makes up is counted as OTHER: a label's values must not be the caller's to pick.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"  # a path no route matches (aiohttp's own 404 or 405)
PLATFORMS = ("apns", "fcm", "webpush")
EMAIL_FAILURES = ("temporary", "permanent")
PUSH_FAILURES = ("dead_token", "temporary", "permanent")
WEBHOOK_FAILURES = (
    "http_3xx",  # a redirect: not followed, permanent
    "http_4xx",  # permanent
    "http_408",  # retried
    "http_429",  # retried after its Retry-After
    "http_5xx",  # retried
    "timeout",  # retried
    "connection_failed",  # retried
    "refused",  # not a public address: permanent
)
SCRAPE_TIMEOUT_S = 5.0


class Histogram:
    """Bucket counts and a sum, added to without a lock (the event loop's thread alone writes them)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((floatToGoString(bound), running))
        return out


@dataclass
class Snapshot:
    """What `refresh` read at the last scrape."""

    database_up: bool = False
    outbox: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # kind → (pending, due, age s)
    pool: tuple[int, int, int] | None = None  # (in use, idle, max)
    websockets: int = 0
    dropped_slow: int = 0
    publish_dropped: int = 0
    access_ended: int = 0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.emails_sent = 0
        self.emails_failed = dict.fromkeys(EMAIL_FAILURES, 0)
        self.pushes_sent = dict.fromkeys(PLATFORMS, 0)
        self.pushes_failed = {(p, r): 0 for p in PLATFORMS for r in PUSH_FAILURES}
        self.tokens_disabled = dict.fromkeys(PLATFORMS, 0)
        self.webhooks_sent = 0
        self.webhooks_failed = dict.fromkeys(WEBHOOK_FAILURES, 0)
        self.pruned_rows = dict.fromkeys(retention.KINDS, 0)
        self.snapshot = Snapshot()
        self.registry.register(self)
        ProcessCollector(registry=self.registry)

    # --- counting (request and send paths) -----------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float | None) -> None:
        """One answered request; `seconds` None for a websocket (its life is not a latency)."""
        method = method if method in METHODS else "OTHER"
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if seconds is not None:
            hist = self.latency.get((method, route))
            if hist is None:
                hist = self.latency[(method, route)] = Histogram(LATENCY_BUCKETS)
            hist.observe(seconds)

    def group_commit(self, units: int) -> None:
        self.batch_sizes.observe(units)

    def email(self, ok: bool, temporary: bool = False) -> None:
        if ok:
            self.emails_sent += 1
        else:
            self.emails_failed["temporary" if temporary else "permanent"] += 1

    def push(self, platform: str, *, sent: int = 0, failed: dict[str, int] | None = None) -> None:
        if platform not in self.pushes_sent:
            return
        self.pushes_sent[platform] += sent
        for reason, n in (failed or {}).items():
            self.pushes_failed[(platform, reason)] += n

    def tokens_disabled_by(self, platform: str, n: int) -> None:
        if platform in self.tokens_disabled:
            self.tokens_disabled[platform] += n

    def webhook(self, reason: str | None) -> None:
        """None: delivered (2xx); else one of WEBHOOK_FAILURES (`webhook_reason`)."""
        if reason is None:
            self.webhooks_sent += 1
        elif reason in self.webhooks_failed:
            self.webhooks_failed[reason] += 1

    def pruned(self, removed: dict[str, int]) -> None:
        """Rows the dispatcher's retention pruning removed, by kind (inbox.retention.KINDS)."""
        for kind, n in removed.items():
            if kind in self.pruned_rows:
                self.pruned_rows[kind] += n

    # --- scraping --------------------------------------------------------------------------------------

    async def refresh(self, app: web.Application) -> None:
        snap = Snapshot()
        # The listener starts before the app's other parts (a taken address stops the start before anything
        # else opens): a scrape while they start finds no hub yet, and no database until it has connected.
        hub = app.get(HUB)
        if hub is not None:
            snap.websockets = hub.connected()
            snap.dropped_slow = hub.dropped_slow
            snap.access_ended = hub.ended_access
            if isinstance(hub, RedisHub | PgHub):
                snap.publish_dropped = hub.dropped_publish
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT_S):
                snap.outbox = await outbox.backlog_by_kind(app[CTX], app[DISPATCHER].handlers)
            snap.database_up = True
        except Exception as exc:  # the database is away: say so, and serve everything else
            log.warning("metrics: the outbox query failed (%s)", type(exc).__name__)
        snap.pool = pool_use()
        self.snapshot = snap

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "securemsg_http_requests",
            "HTTP requests answered, by method, route pattern and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), n in self.requests.items():
            requests.add_metric([method, route, str(status)], n)
        yield requests
        latency = HistogramMetricFamily(
            "securemsg_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by method and route pattern (websockets aside).",
            labels=["method", "route"],
        )
        for (method, route), hist in self.latency.items():
            latency.add_metric([method, route], hist.buckets(), hist.total)
        yield latency
        batches = HistogramMetricFamily(
            "securemsg_group_commit_batch_size",
            "Write units (sends) committed together in one group-commit transaction.",
        )
        batches.add_metric([], self.batch_sizes.buckets(), self.batch_sizes.total)
        yield batches
        yield from self._deliveries()
        yield from self._scraped(self.snapshot)

    def _deliveries(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "securemsg_emails_sent", "Emails the SMTP server accepted.", self.emails_sent
        )
        emails = CounterMetricFamily(
            "securemsg_emails_failed",
            "Emails not accepted: temporary (retried later) or permanent (given up).",
            labels=["reason"],
        )
        for reason, n in self.emails_failed.items():
            emails.add_metric([reason], n)
        yield emails
        sent = CounterMetricFamily(
            "securemsg_pushes_sent", "Pushes a provider accepted, by platform.", labels=["platform"]
        )
        for platform, n in self.pushes_sent.items():
            sent.add_metric([platform], n)
        yield sent
        failed = CounterMetricFamily(
            "securemsg_pushes_failed",
            "Pushes not delivered, by platform and reason (dead_token, temporary: retried, permanent).",
            labels=["platform", "reason"],
        )
        for (platform, reason), n in self.pushes_failed.items():
            failed.add_metric([platform, reason], n)
        yield failed
        dead = CounterMetricFamily(
            "securemsg_push_tokens_disabled",
            "Devices disabled because their provider reported the push token dead.",
            labels=["platform"],
        )
        for platform, n in self.tokens_disabled.items():
            dead.add_metric([platform], n)
        yield dead
        yield CounterMetricFamily(
            "securemsg_webhooks_sent", "Webhook deliveries answered with 2xx.", self.webhooks_sent
        )
        hooks = CounterMetricFamily(
            "securemsg_webhooks_failed",
            "Webhook delivery attempts that failed, by reason (docs/operations.md says which are retried).",
            labels=["reason"],
        )
        for reason, n in self.webhooks_failed.items():
            hooks.add_metric([reason], n)
        yield hooks
        pruned = CounterMetricFamily(
            "securemsg_retention_pruned_rows",
            "Rows the retention pruning removed, by kind (never a message or an audit row).",
            labels=["kind"],
        )
        for kind, n in self.pruned_rows.items():
            pruned.add_metric([kind], n)
        yield pruned

    def _scraped(self, snap: Snapshot) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "securemsg_database_up", "1 if the scrape's outbox query answered, else 0.", int(snap.database_up)
        )
        pending = GaugeMetricFamily(
            "securemsg_outbox_pending", "Outbox rows not yet settled, due or not, by kind.", labels=["kind"]
        )
        due = GaugeMetricFamily(
            "securemsg_outbox_due", "Outbox rows due now and not yet settled, by kind.", labels=["kind"]
        )
        age = GaugeMetricFamily(
            "securemsg_outbox_oldest_due_age_seconds",
            "How long the oldest due outbox row has been waiting (0 when none is due), by kind.",
            labels=["kind"],
        )
        for kind, (n_pending, n_due, oldest) in sorted(snap.outbox.items()):
            pending.add_metric([kind], n_pending)
            due.add_metric([kind], n_due)
            age.add_metric([kind], oldest)
        yield pending
        yield due
        yield age
        pool = GaugeMetricFamily(
            "securemsg_db_pool_connections",
            "Database connections of this process, by state (in_use, idle, max).",
            labels=["state"],
        )
        if snap.pool is not None:
            for state, n in zip(("in_use", "idle", "max"), snap.pool, strict=True):
                pool.add_metric([state], n)
        yield pool
        yield GaugeMetricFamily(
            "securemsg_websocket_connections", "Websockets open on this process.", snap.websockets
        )
        yield CounterMetricFamily(
            "securemsg_websocket_cut_off",
            "Websockets cut off for falling too far behind (a client that stopped reading).",
            snap.dropped_slow,
        )
        yield CounterMetricFamily(
            "securemsg_websocket_access_ended",
            "Websockets closed with 4401 because the access behind them ended (R27).",
            snap.access_ended,
        )
        yield CounterMetricFamily(
            "securemsg_realtime_publish_dropped",
            "Live events dropped because Redis was too slow or away (clients catch up through the API).",
            snap.publish_dropped,
        )


def webhook_reason(status_code: int) -> str | None:
    """The label of a webhook's HTTP answer: None for a 2xx."""
    if 200 <= status_code < 300:
        return None
    if status_code in (408, 429):
        return f"http_{status_code}"
    return f"http_{min(max(status_code // 100, 3), 5)}xx"


def pool_use() -> tuple[int, int, int] | None:
    """(in use, idle, max) of the default connection (`inbox.db.pool_use`)."""
    return db.pool_use()


# --- the listener --------------------------------------------------------------------------------------


def metrics_app(app: web.Application) -> web.Application:
    """The metrics listener's own little app: GET /metrics about `app`, and nothing else."""

    async def metrics(request: web.Request) -> web.Response:
        started = time.perf_counter()
        await app[METRICS].refresh(app)
        body = app[METRICS].render()
        log.debug("metrics scraped in %.1f ms", (time.perf_counter() - started) * 1000)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    inner = web.Application()
    inner.router.add_get("/metrics", metrics)
    return inner


async def metrics_listener(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context (gateway.app): serves `metrics_app` on SECUREMSG_METRICS_LISTEN while the app
    runs; the address it got (port 0 picks a free one) is in app[SERVICES]["metrics_address"]. A child of
    `serve --processes N` serves it on the Unix socket its supervisor named instead (app[SERVICES]
    ["metrics_socket"]), and the supervisor serves SECUREMSG_METRICS_LISTEN for all of them."""
    socket_path = app[SERVICES].get("metrics_socket")
    listen = app[CONFIG].metrics_listen
    if socket_path is not None:
        runner = web.AppRunner(metrics_app(app), access_log=None, handle_signals=False)
        await runner.setup()
        await web.UnixSite(runner, str(socket_path)).start()
    elif listen is not None:
        runner = await listen_on(metrics_app(app), listen)
        address = runner.addresses[0]
        app[SERVICES]["metrics_address"] = (address[0], address[1])
    else:
        yield
        return
    try:
        yield
    finally:
        await runner.cleanup()


async def listen_on(metrics: web.Application, listen: tuple[str, int]) -> web.AppRunner:
    """Serve `metrics` on SECUREMSG_METRICS_LISTEN; an address that cannot be listened on (taken, or not
    this machine's) is a ConfigError: one line, exit status 2."""
    runner = web.AppRunner(metrics, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = listen
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"SECUREMSG_METRICS_LISTEN {host}:{port} cannot be listened on: {exc.strerror or exc}"
        ) from None
    log.info(
        "metrics on http://%s:%s/metrics", host if ":" not in host else f"[{host}]", runner.addresses[0][1]
    )
    return runner


# --- `serve --processes N`: one address for N processes ----------------------------------------------

CHILD_SCRAPE_TIMEOUT_S = 8.0  # a child's outbox query gives up after 5 s; Prometheus waits 10 s by default


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def merge_processes(texts: dict[int, str]) -> bytes:
    """The pages of several processes as one: every sample keeps its labels and gains `process`, the
    child's index (0 … N-1, the same after a restart), so each process's counters stay series of their own
    (a restarted child's reset is one series starting again, which rate() understands) and the dashboard's
    `sum by` / `max by` add them up as they add up separate targets."""
    merged: dict[str, Metric] = {}
    for index, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            into.samples.extend(
                Sample(s.name, {**s.labels, "process": str(index)}, s.value, s.timestamp, s.exemplar)
                for s in family.samples
            )
    return generate_latest(_Families(merged.values()))


def supervisor_app(sockets: dict[int, Path]) -> web.Application:
    """The supervisor's GET /metrics: each running child's page, read over its Unix socket at scrape time,
    merged. A child that is starting again is simply absent until it answers."""

    async def read(index: int, path: Path) -> tuple[int, str | None]:
        try:
            async with (
                aiohttp.ClientSession(
                    connector=aiohttp.UnixConnector(path=str(path)),
                    timeout=aiohttp.ClientTimeout(total=CHILD_SCRAPE_TIMEOUT_S),
                ) as http,
                http.get("http://child/metrics") as resp,
            ):
                resp.raise_for_status()
                return index, await resp.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("metrics: gateway process %d did not answer (%s)", index, type(exc).__name__)
            return index, None

    async def metrics(request: web.Request) -> web.Response:
        pages = await asyncio.gather(*(read(i, p) for i, p in sorted(sockets.items())))
        body = merge_processes({i: text for i, text in pages if text is not None})
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


METRICS = web.AppKey("metrics", Metrics)
