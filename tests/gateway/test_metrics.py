"""GET /metrics (docs/operations.md): a load through the real app — sends, a websocket, emails through the
loopback SMTP server (one refused for a while), pushes to the APNs and FCM fakes (one token dead), a webhook
whose receiver fails — then the metrics listener is scraped over HTTP and parsed as Prometheus parses it.

Every family is there with the values the load implies; no label holds a concrete path, an id, a name, an
address or a message; and /metrics is never served on the public listener: not by default, and not when
the metrics listener is on either.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import Config, ConfigError, load_config
from gateway.keys import SERVICES
from gateway.metrics import METHODS, METRICS, UNMATCHED
from tests.conftest import make_config
from tests.fakes.apns import ApnsKey, ApnsReply, FakeApns
from tests.fakes.certs import CertPaths
from tests.fakes.fcm import FakeFcm
from tests.fakes.smtp import FakeSmtp
from tests.faults.procs import ROOT, free_port, server_env
from tests.gateway.pushkit import CANARY, apns_token, drain, fcm_token, push_config, register

FAMILIES = {
    "securemsg_http_requests": "counter",
    "securemsg_http_request_duration_seconds": "histogram",
    "securemsg_group_commit_batch_size": "histogram",
    "securemsg_emails_sent": "counter",
    "securemsg_emails_failed": "counter",
    "securemsg_pushes_sent": "counter",
    "securemsg_pushes_failed": "counter",
    "securemsg_push_tokens_disabled": "counter",
    "securemsg_webhooks_sent": "counter",
    "securemsg_webhooks_failed": "counter",
    "securemsg_database_up": "gauge",
    "securemsg_outbox_pending": "gauge",
    "securemsg_outbox_due": "gauge",
    "securemsg_outbox_oldest_due_age_seconds": "gauge",
    "securemsg_db_pool_connections": "gauge",
    "securemsg_websocket_connections": "gauge",
    "securemsg_websocket_cut_off": "counter",
    "securemsg_websocket_access_ended": "counter",
    "securemsg_realtime_publish_dropped": "counter",
    "securemsg_retention_pruned_rows": "counter",
    "process_resident_memory_bytes": "gauge",
}


@pytest.fixture
def config(
    db_url: str,
    tmp_path: Path,
    smtp: FakeSmtp,
    fake_apns: FakeApns,
    fake_fcm: FakeFcm,
    fcm_credentials_file: Path,
    apns_key: ApnsKey,
    tls_certs: CertPaths,
    monkeypatch: pytest.MonkeyPatch,
) -> Config:
    return push_config(
        db_url,
        tmp_path,
        fake_apns,
        fake_fcm,
        fcm_credentials_file,
        apns_key,
        tls_certs,
        monkeypatch,
        smtp_port=smtp.port,
        webhook_allow_private=True,  # the failing receiver listens on loopback
        metrics_listen=("127.0.0.1", 0),  # any free port: the listener says which in app[SERVICES]
    )


@pytest.fixture
async def failing_receiver(aiohttp_server: Any) -> str:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503, text="down for maintenance")

    app = web.Application()
    app.router.add_post("/hooks", handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/hooks"))


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.families: dict[str, Metric] = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, family: str, sample: str | None = None, **labels: str) -> float:
        """The one sample of `family` (named `sample`, default the family's own) with exactly these labels."""
        name = sample or family
        found = [s.value for s in self.families[family].samples if s.name == name and s.labels == labels]
        assert len(found) == 1, (family, name, labels, found)
        return found[0]

    def total(self, family: str, sample: str, **labels: str) -> float:
        return sum(
            s.value
            for s in self.families[family].samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def labels(self) -> list[tuple[str, str, str]]:
        return [
            (s.name, k, v) for f in self.families.values() for s in f.samples for k, v in s.labels.items()
        ]


async def scrape(app: web.Application) -> Scrape:
    host, port = app[SERVICES]["metrics_address"]
    async with aiohttp.ClientSession() as http, http.get(f"http://{host}:{port}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return Scrape(await resp.text())


async def until(check: Callable[[], bool], within_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not check():
        assert loop.time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_metrics_after_a_load_every_family_with_sensible_values_and_no_ids_or_phi(
    client, api, cast, clock, db_url, smtp, fake_apns, fake_fcm, failing_receiver
) -> None:
    app = client.server.app
    status, hook = await api.post(
        "/webhooks", {"url": failing_receiver, "events": ["message.created"]}, token=cast.api_key
    )
    assert status == 201, hook
    await register(api, cast.tok("clinician"), "apns", apns_token(41))
    await register(api, cast.tok("clinician"), "fcm", fcm_token(41))
    fake_apns.reply_to(apns_token(41), ApnsReply.unregistered())
    ws = await client.ws_connect("/api/v1/ws", headers={"Authorization": f"Bearer {cast.tok('clinician')}"})

    # Sends: the client to the clinician (a push to each device, a webhook), the clinician to the client
    # (an email), each through the group commit.
    status, from_client = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")]}, token=cast.tok("client")
    )
    assert status == 201
    for text in (CANARY, f"{CANARY} again"):
        status, _ = await api.post(
            f"/conversations/{from_client['id']}/messages", {"body": text}, token=cast.tok("client")
        )
        assert status == 201
    status, to_client = await api.post(
        "/conversations", {"participant_ids": [cast.id("client2")]}, token=cast.tok("clinician")
    )
    assert status == 201
    status, _ = await api.post(
        f"/conversations/{to_client['id']}/messages", {"body": CANARY}, token=cast.tok("clinician")
    )
    assert status == 201
    status, _ = await api.get(f"/conversations/{from_client['id']}/messages", token=cast.tok("clinician"))
    assert status == 200
    assert (await client.get(f"/no/such/page/{from_client['id']}")).status == 404
    assert (await client.request("PROPFIND", "/healthz")).status == 405

    # Before the dispatcher runs: the work waits, and the oldest due row has waited as long as the clock says.
    clock.advance(42)
    before = await scrape(app)
    assert before.value("securemsg_websocket_connections") == 1
    assert before.value("securemsg_database_up") == 1
    for kind in ("push", "client_email", "webhook"):
        assert before.value("securemsg_outbox_due", kind=kind) >= 1, kind
        assert before.value("securemsg_outbox_oldest_due_age_seconds", kind=kind) >= 42, kind
    # The unread checks wait for the practice's delay: pending, not due.
    assert before.value("securemsg_outbox_pending", kind="unread_check") >= 3
    assert before.value("securemsg_outbox_due", kind="unread_check") == 0
    assert before.value("securemsg_outbox_oldest_due_age_seconds", kind="unread_check") == 0

    smtp.refuse_next(1, code=451, at="MAIL")  # the first email meets a busy server: temporary
    await drain(client)
    clock.advance(3600)  # past the email's backoff (and the unread delay: those checks go now too)
    await drain(client)
    assert smtp.received, "no email went"
    await ws.close()
    # The websocket's request is counted once its handler is over.
    await until(lambda: app[METRICS].requests.get(("GET", "/api/v1/ws", 101), 0) > 0)

    after = await scrape(app)
    for name, kind in FAMILIES.items():
        assert name in after.families, name
        assert after.families[name].type == kind, name
    assert after.value("securemsg_websocket_connections") == 0
    # Requests, by route pattern: the concrete path is never a label.
    posts = after.total("securemsg_http_requests", "securemsg_http_requests_total", method="POST",
                        route="/api/v1/conversations/{id}/messages", status="201")  # fmt: skip
    assert posts == 3
    assert after.value(
        "securemsg_http_requests", "securemsg_http_requests_total",
        method="GET", route="/api/v1/conversations/{id}/messages", status="200",
    ) == 1  # fmt: skip
    assert (
        after.value(
            "securemsg_http_requests",
            "securemsg_http_requests_total",
            method="GET",
            route=UNMATCHED,
            status="404",
        )
        == 1
    )
    assert (
        after.value(
            "securemsg_http_requests",
            "securemsg_http_requests_total",
            method="OTHER",
            route=UNMATCHED,
            status="405",
        )
        == 1
    )
    assert (
        after.value(
            "securemsg_http_requests",
            "securemsg_http_requests_total",
            method="GET",
            route="/api/v1/ws",
            status="101",
        )
        == 1
    )
    # Latency: one observation per answered request (the websocket aside), within the buckets.
    lat = "securemsg_http_request_duration_seconds"
    assert after.value(lat, f"{lat}_count", method="POST", route="/api/v1/conversations/{id}/messages") == 3
    assert 0 < after.value(lat, f"{lat}_sum", method="POST", route="/api/v1/conversations/{id}/messages") < 30
    assert not [s for s in after.families[lat].samples if s.labels.get("route") == "/api/v1/ws"]
    # The three sends went through the group commit.
    gc = "securemsg_group_commit_batch_size"
    assert after.value(gc, f"{gc}_count") >= 3 and after.value(gc, f"{gc}_sum") >= 3
    # Emails: one refused for a while, then sent.
    assert after.value("securemsg_emails_failed", "securemsg_emails_failed_total", reason="temporary") == 1
    assert after.value("securemsg_emails_failed", "securemsg_emails_failed_total", reason="permanent") == 0
    assert after.value("securemsg_emails_sent", "securemsg_emails_sent_total") == len(smtp.received) >= 1
    # Pushes: FCM delivered; APNs called the token dead, and its device was disabled.
    assert after.value("securemsg_pushes_sent", "securemsg_pushes_sent_total", platform="fcm") == len(
        fake_fcm.received
    ) >= 2  # fmt: skip
    # (Both messages' pushes may be in one batch and both find the token dead; the device is disabled once.)
    dead = after.value(
        "securemsg_pushes_failed", "securemsg_pushes_failed_total", platform="apns", reason="dead_token"
    )
    assert dead == len(fake_apns.received) >= 1
    assert after.value("securemsg_pushes_sent", "securemsg_pushes_sent_total", platform="apns") == 0
    assert (
        after.value("securemsg_push_tokens_disabled", "securemsg_push_tokens_disabled_total", platform="apns")
        == 1
    )
    # The webhook: its receiver answered 503, so each attempt failed and is retried later.
    assert after.value("securemsg_webhooks_failed", "securemsg_webhooks_failed_total", reason="http_5xx") >= 2
    assert after.value("securemsg_webhooks_sent", "securemsg_webhooks_sent_total") == 0
    assert after.value("securemsg_outbox_pending", kind="webhook") >= 1  # waiting for their retry
    assert after.value("securemsg_outbox_due", kind="push") == 0
    assert after.value("securemsg_outbox_due", kind="client_email") == 0
    # The connection pool: SQLite's one connection, or the asyncpg pool (maxsize 10).
    in_use = after.value("securemsg_db_pool_connections", state="in_use")
    idle = after.value("securemsg_db_pool_connections", state="idle")
    top = after.value("securemsg_db_pool_connections", state="max")
    assert top == (1 if db_url.startswith("sqlite") else 10) and 0 <= in_use + idle <= top
    assert after.value("securemsg_realtime_publish_dropped", "securemsg_realtime_publish_dropped_total") == 0
    assert after.value("process_resident_memory_bytes") > 10_000_000

    # No label is a concrete path, an id, a person or a message.
    patterns = {r.canonical for r in app.router.resources()} | {UNMATCHED}
    found = after.labels()
    assert found
    for sample, key, value in found:
        if key == "route":
            assert value in patterns, value
        if key == "method":
            assert value in METHODS | {"OTHER"}, value
        assert not re.search(r"/\d+(/|$)", value), (sample, key, value)
    ids = {str(v) for v in (*cast.ids.values(), from_client["id"], to_client["id"], hook["id"])}
    assert not [v for _, _, v in found if v in ids]
    status, people = await api.get("/clients", token=cast.api_key)
    needles = ["CANARY", "panic", "@example", *(p["name"] for p in people["items"]), failing_receiver]
    assert [n for n in needles if n in after.text] == []
    # And the public listener never serves /metrics, even with the metrics listener on.
    assert (await client.get("/metrics")).status == 404


@pytest.fixture
def plain_config(sqlite_url: str, tmp_path: Path) -> Config:
    return make_config(sqlite_url, tmp_path / "var")


async def test_metrics_are_off_by_default_and_never_on_the_public_listener(aiohttp_client, plain_config):
    from gateway.app import create_app

    assert plain_config.metrics_listen is None  # the default: no listener at all
    client = await aiohttp_client(create_app(plain_config))
    resp = await client.get("/metrics")
    assert resp.status == 404 and "securemsg_" not in await resp.text()
    assert "metrics_address" not in client.server.app[SERVICES]
    assert load_config({"SECUREMSG_VAR_DIR": str(plain_config.var_dir)}).metrics_listen is None


async def test_a_metrics_address_already_taken_stops_the_start_with_one_line(plain_config) -> None:
    from gateway.app import create_app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runner = web.AppRunner(create_app(plain_config.with_overrides(metrics_listen=("127.0.0.1", port))))
        with pytest.raises(ConfigError) as refused:
            await runner.setup()
        await runner.cleanup()
    message = str(refused.value)
    assert message.startswith(f"SECUREMSG_METRICS_LISTEN 127.0.0.1:{port} cannot be listened on")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("[::1]:9108", ("::1", 9108)),
        ("0.0.0.0:9108", ("0.0.0.0", 9108)),  # noqa: S104 - parsing, not binding
        ("localhost:0", ("localhost", 0)),
        ("", None),
    ],
)
def test_the_metrics_listen_setting(tmp_path: Path, raw: str, expected: Any) -> None:
    env = {"SECUREMSG_VAR_DIR": str(tmp_path), "SECUREMSG_METRICS_LISTEN": raw}
    assert load_config(env).metrics_listen == expected


@pytest.mark.parametrize(
    "raw", ["9108", "metrics.example.org:9108", "127.0.0.1:99999", "127.0.0.1:http", ":9108"]
)
def test_a_bad_metrics_listen_setting_is_refused(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match="SECUREMSG_METRICS_LISTEN"):
        load_config({"SECUREMSG_VAR_DIR": str(tmp_path), "SECUREMSG_METRICS_LISTEN": raw})


async def test_the_dashboard_alerts_and_scrape_config_name_only_what_is_exported(
    aiohttp_client, plain_config
):
    """deploy/: valid JSON and YAML, and every metric they query is one a process serves (a renamed metric
    would leave a dashboard panel empty and an alert silent)."""
    import yaml

    from gateway.app import create_app

    client = await aiohttp_client(create_app(plain_config))
    await client.get("/healthz")
    app = client.server.app
    await app[METRICS].refresh(app)
    served = {
        s.name for f in text_string_to_metric_families(app[METRICS].render().decode()) for s in f.samples
    }
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus-alerts.yml").read_text())
    rules = [r for g in alerts["groups"] for r in g["rules"]]
    assert len(queries) > 20 and len(rules) >= 8
    assert {"SecuremsgOutboxBehind", "SecuremsgPushFailures", "SecuremsgHigh5xxRate"} <= {
        r["alert"] for r in rules
    }
    named = {
        m for q in queries + [r["expr"] for r in rules] for m in re.findall(r"\b(?:securemsg|process)_\w+", q)
    }
    assert named and named - served == set()
    # The whole family set is on the dashboard: nothing exported goes unshown.
    shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in named}
    exported = {re.sub(r"_(bucket|sum|count)$", "", n) for n in served if n.startswith("securemsg_")}
    assert exported - shown == set()
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert {j["job_name"] for j in scrape["scrape_configs"]} == {"securemsg-gateway", "securemsg-worker"}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["worker"]["environment"]["SECUREMSG_METRICS_LISTEN"] == "0.0.0.0:9108"
    assert "ports" not in compose["services"]["worker"]  # the metrics port is not published


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_with_the_database_away_the_scrape_still_answers_and_says_so(client, db_url) -> None:
    """PostgreSQL refuses this database's connections and its sessions are ended: the scrape answers 200,
    with `securemsg_database_up 0` and no outbox figures; once the database is back, so are they."""
    import asyncpg

    app = client.server.app
    assert (await scrape(app)).value("securemsg_database_up") == 1
    base, _, name = db_url.rpartition("/")
    admin = await asyncpg.connect(base.replace("postgres://", "postgresql://", 1) + "/postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        away = await scrape(app)
        assert away.value("securemsg_database_up") == 0
        assert away.families["securemsg_outbox_due"].samples == []
        assert away.value("securemsg_websocket_connections") == 0  # the rest is still served
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    back = await scrape(app)
    assert back.value("securemsg_database_up") == 1
    assert back.value("securemsg_outbox_due", kind="push") == 0


async def test_a_worker_process_serves_its_own_metrics_of_what_it_sent(
    api, cast, db_url, tmp_path, smtp: FakeSmtp
) -> None:
    """`securemsg worker` does the sending in a scale-out: a real worker process, on the same database,
    sends the email a message implies, and its own metrics listener says so."""
    port = free_port()
    env = server_env(
        db_url,
        tmp_path / "worker-var",
        SECUREMSG_SMTP_PORT=str(smtp.port),
        SECUREMSG_METRICS_LISTEN=f"127.0.0.1:{port}",
        SECUREMSG_LOG_FORMAT="json",
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "worker", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        status, conv = await api.post(
            "/conversations",
            {"participant_ids": [cast.id("client")], "body": CANARY},
            token=cast.tok("clinician"),
        )
        assert status == 201
        seen: Scrape | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                assert proc.returncode is None, log.read_text()
                try:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        seen = Scrape(await resp.text())
                    # The email counts as sent once the SMTP server took it, a moment before its row is
                    # settled: wait for both.
                    if (
                        seen.value("securemsg_emails_sent", "securemsg_emails_sent_total") >= 1
                        and seen.value("securemsg_outbox_due", kind="client_email") == 0
                    ):
                        break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        assert seen is not None, log.read_text()
        assert seen.value("securemsg_emails_sent", "securemsg_emails_sent_total") == 1 == len(smtp.received)
        assert seen.value("securemsg_database_up") == 1
        assert seen.value("securemsg_outbox_due", kind="client_email") == 0
        assert "unread_check" in {s.labels["kind"] for s in seen.families["securemsg_outbox_pending"].samples}
        assert CANARY not in seen.text and str(conv["id"]) not in {v for _, _, v in seen.labels()}
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=15)
    # Its log: JSON lines, none about a request (a worker serves none but /metrics, which is not logged).
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines and all("request_id" not in entry for entry in lines)


async def test_live_events_dropped_for_want_of_redis_are_counted(aiohttp_client, plain_config) -> None:
    """With Redis configured but not answering (nothing listens on its port), events queue for it; past
    the queue's limit they are dropped, and /metrics counts every one."""
    from gateway.app import create_app
    from gateway.keys import HUB
    from gateway.realtime import PUBLISH_QUEUE_LIMIT, RedisHub

    config = plain_config.with_overrides(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.05, metrics_listen=("127.0.0.1", 0)
    )
    client = await aiohttp_client(create_app(config))
    app = client.server.app
    hub = app[HUB]
    assert isinstance(hub, RedisHub)
    assert (await scrape(app)).value(
        "securemsg_realtime_publish_dropped", "securemsg_realtime_publish_dropped_total"
    ) == 0
    # In one turn of the event loop (publish only queues), so the publisher cannot drain meanwhile.
    for n in range(PUBLISH_QUEUE_LIMIT + 25):
        await hub.publish([1], {"type": "message.created", "n": n})
    seen = await scrape(app)
    dropped = seen.value("securemsg_realtime_publish_dropped", "securemsg_realtime_publish_dropped_total")
    assert dropped == hub.dropped_publish == 25


def test_serve_with_a_taken_metrics_address_exits_2_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREMSG_")}
        env.update(
            SECUREMSG_VAR_DIR=str(tmp_path / "var"),
            SECUREMSG_METRICS_LISTEN=f"127.0.0.1:{port}",
            PYTHONPATH=str(ROOT),
        )
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--port", str(free_port())],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"securemsg: SECUREMSG_METRICS_LISTEN 127.0.0.1:{port} cannot be listened on")
    assert "Traceback" not in done.stderr


async def test_rows_the_dispatchers_retention_pruning_removed_are_counted_by_kind(
    aiohttp_client, sqlite_url, tmp_path, clock
) -> None:
    """A running dispatcher (the worker's loop) prunes old outbox history, expired links and tokens; its
    metrics listener counts the rows by kind, every kind at 0 before, and the labels are the kinds alone."""
    from gateway.app import create_app
    from gateway.keys import CTX, DISPATCHER
    from inbox import links, outbox, retention
    from inbox.models import AuthToken, LinkToken, OutboxJob, Participant
    from tests.conftest import Api, build_cast

    config = make_config(sqlite_url, tmp_path / "var", metrics_listen=("127.0.0.1", 0))
    client = await aiohttp_client(create_app(config, clock=clock, worker=True))
    app = client.server.app
    ctx = app[CTX]
    cast = await build_cast(Api(client), config, clock)
    start = await scrape(app)
    family = "securemsg_retention_pruned_rows"
    sample = f"{family}_total"
    assert {s.labels["kind"]: s.value for s in start.families[family].samples} == dict.fromkeys(
        retention.KINDS, 0
    )
    # Day 0: seven finished outbox rows (no handler takes their kind), a link, the cast's app tokens.
    jobs = [(await outbox.enqueue(ctx, "finished_elsewhere")).id for _ in range(7)]
    await OutboxJob.filter(id__in=jobs).update(status="done", finished_at=clock.now())
    await links.issue_notify_link(ctx, await Participant.get(id=cast.id("client")), None)
    tokens = await AuthToken.filter(kind="app").count()
    assert tokens == len(cast.tokens) and await LinkToken.all().count() == 1

    clock.advance(31 * 86400)  # past the outbox's 30 days and the tokens' 7 after they expired
    app[DISPATCHER]._next_prune = 0.0  # its next turn prunes, rather than in a minute
    seen = start
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while seen.value(family, sample, kind="outbox") < 7:
        assert loop.time() < deadline, seen.text
        await asyncio.sleep(0.1)
        seen = await scrape(app)
    assert seen.value(family, sample, kind="outbox") == 7
    assert seen.value(family, sample, kind="links") == 1
    assert seen.value(family, sample, kind="expired_tokens") == tokens
    assert seen.value(family, sample, kind="revoked_tokens") == 0
    assert seen.value(family, sample, kind="webhook_deliveries") == 0
    assert not await OutboxJob.filter(id__in=jobs).exists()
    assert all(set(s.labels) == {"kind"} for s in seen.families[family].samples)  # no id, no person
    assert {s.labels["kind"] for s in seen.families[family].samples} == set(retention.KINDS)


async def test_a_scrape_while_the_app_is_still_starting_answers_and_says_the_database_is_not_up(
    aiohttp_client, config, caplog: pytest.LogCaptureFixture
) -> None:
    """The metrics listener starts before the app's other parts (so a taken address stops the start before
    anything else opens): a scrape in between finds no realtime hub and no database yet, and still answers."""
    from gateway.app import create_app
    from gateway.metrics import metrics_app

    app = create_app(config)  # not started: no hub, no database connection
    listener = await aiohttp_client(metrics_app(app))
    resp = await listener.get("/metrics")
    assert resp.status == 200, await resp.text()
    seen = Scrape(await resp.text())
    assert seen.value("securemsg_database_up") == 0
    assert seen.value("securemsg_websocket_connections") == 0
    assert "metrics: the outbox query failed" in caplog.text


def test_the_pages_of_several_processes_merge_into_one_each_sample_labelled_with_its_process() -> None:
    """`serve --processes N`'s one address: the children's pages as Prometheus parses them, every family
    once with its type, every sample kept with its own labels and the child's index."""
    from gateway.metrics import Metrics, merge_processes

    first, second = Metrics(), Metrics()
    first.request("POST", "/api/v1/conversations/{id}/messages", 201, 0.003)
    for _ in range(2):
        second.request("POST", "/api/v1/conversations/{id}/messages", 201, 0.2)
    second.group_commit(5)
    pages = {0: first.render().decode(), 1: second.render().decode()}
    merged = Scrape(merge_processes(pages).decode())
    alone = {f.name: f.type for f in text_string_to_metric_families(pages[0])}
    assert {name: f.type for name, f in merged.families.items()} == alone
    route = "/api/v1/conversations/{id}/messages"
    for process, sends in (("0", 1), ("1", 2)):
        labels = {"method": "POST", "route": route, "status": "201", "process": process}
        assert merged.value("securemsg_http_requests", "securemsg_http_requests_total", **labels) == sends
        lat = "securemsg_http_request_duration_seconds"
        del labels["status"]
        assert merged.value(lat, f"{lat}_count", **labels) == sends
    gc = "securemsg_group_commit_batch_size"
    assert merged.value(gc, f"{gc}_sum", process="1") == 5 and merged.value(gc, f"{gc}_sum", process="0") == 0
    assert {s.labels["process"] for f in merged.families.values() for s in f.samples} == {"0", "1"}
    assert merge_processes({}) == b""  # every child starting again: an empty page, not an error
