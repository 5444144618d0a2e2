"""The app factory: every pool and client is created inside `cleanup_ctx` and closed there."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway import (
    devmail,
    notify_email,
    notify_push,
    notify_webhooks,
    oidc,
    openapi,
    portal,
    portal_compose,
    portal_oidc,
    portal_signin,
    team_devices,
    team_exports,
    team_inbox,
    team_password,
    team_people,
    team_records,
    team_reset,
    team_signin,
    wellknown,
)
from gateway.auditing import audit_part
from gateway.config import Config, audit_keys_of, data_key_loader
from gateway.dispatcher import Dispatcher
from gateway.exporter import export_part
from gateway.keys import CONFIG, CTX, DISPATCHER, HUB, SERVICES
from gateway.limits import limiter_part
from gateway.logs import stamp_request_ids
from gateway.logsafe import redact_aiohttp_logs
from gateway.metrics import METRICS, Metrics, metrics_listener
from gateway.middleware import errors, observe, security_headers
from gateway.realtime import CHANNEL, Hub, PgHub, RedisHub, redis_scope
from gateway.routing import check_described
from gateway.templating import STATIC_DIR
from gateway.validation import MAX_BODY_BYTES
from inbox import accounts, db
from inbox.clock import Clock, SystemClock
from inbox.context import InboxContext
from inbox.crypto import DataKeyring
from inbox.retention import Policy as RetentionPolicy

log = logging.getLogger(__name__)


def make_context(config: Config, clock: Clock | None = None) -> InboxContext:
    return InboxContext(
        keyring=DataKeyring(
            config.data_keys,
            loader=data_key_loader(config.data_key_file) if config.data_key_file else None,
        ),
        secret=config.secret_key,
        clock=clock or SystemClock(),
        default_unread_delay_s=config.unread_email_delay_s,
        session_ttl_s=config.session_ttl_s,
        link_ttl_s=config.link_ttl_s,
        signin_link_ttl_s=config.signin_link_ttl_s,
        public_url=config.public_url,
        app_link_scheme=config.app_link_scheme,
        outbox_lease_s=config.outbox_lease_s,
        audit_keys=audit_keys_of(config),
        export_retention_days=config.export_retention_days,
    )


def retention_policy(config: Config) -> RetentionPolicy:
    return RetentionPolicy(
        outbox_days=config.retention_outbox_days,
        webhook_deliveries_days=config.retention_webhook_deliveries_days,
        tokens_days=config.retention_tokens_days,
    )


async def _database(app: web.Application) -> AsyncIterator[None]:
    await db.connect(app[CONFIG].database_url, timeout_s=app[CONFIG].database_timeout_s)
    yield
    await db.disconnect()


async def _hub(app: web.Application) -> AsyncIterator[None]:
    url = app[CONFIG].redis_url
    # R27: the hub re-checks the tokens behind its sockets with the same conditions as every request.
    check = functools.partial(accounts.ended_credentials, app[CTX])
    hub: Hub
    if url:
        channel = f"{CHANNEL}:{redis_scope(app[CONFIG].database_url)}"
        redis_hub = RedisHub(url, check, timeout_s=app[CONFIG].redis_timeout_s, channel=channel)
        await redis_hub.start()
        hub = redis_hub
    elif app[SERVICES].get("shared_events") and db.dialect() == "postgres":
        # `serve --processes N` without Redis: the events cross the processes through LISTEN/NOTIFY.
        pg_hub = PgHub(app[CONFIG].database_url, check, timeout_s=app[CONFIG].database_timeout_s)
        await pg_hub.start()
        hub = pg_hub
    else:
        hub = Hub(check)
    app[HUB] = hub
    yield
    await hub.close()


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    """Runs last: every part has registered its handlers by now. Without the worker, nothing loops here
    (tests drive `app[DISPATCHER].drain()` themselves; `securemsg worker` processes do the sending)."""
    dispatcher = app[DISPATCHER]
    if app[SERVICES].get("run_worker"):
        dispatcher.start()
    yield
    await dispatcher.stop()


async def _close_sockets(app: web.Application) -> None:
    """On shutdown, before the graceful wait: an open websocket would otherwise hold the process for the
    whole shutdown timeout (about a minute), since its handler only ends when the socket does."""
    if HUB in app:
        await app[HUB].close_sockets()


async def _answered_by(request: web.Request, response: web.StreamResponse) -> None:
    """Tests only (SECUREMSG_TESTING=1): which of the processes answered, so a test can see them all work."""
    response.headers["X-Securemsg-Pid"] = str(os.getpid())


# The optional parts, each a cleanup context that builds its clients and registers its outbox handlers.
PARTS: list[Callable[[web.Application], AsyncIterator[None]]] = [
    limiter_part,
    audit_part,
    export_part,
    notify_push.push_part,
    notify_webhooks.webhook_part,
    notify_email.email_notifications,
    devmail.dev_mail_sink,
    oidc.oidc_part,
]


def create_app(
    config: Config,
    *,
    clock: Clock | None = None,
    worker: bool = False,
    dev_mail: bool = False,
    shared_events: bool = False,
    metrics_socket: str | None = None,
) -> web.Application:
    """`shared_events`: one of several processes of `serve --processes N` (gateway.procs), whose realtime
    events must reach the others' sockets; `metrics_socket`: where such a process serves its /metrics for
    the parent to read."""
    redact_aiohttp_logs()
    stamp_request_ids()
    app = web.Application(middlewares=[observe, errors], client_max_size=MAX_BODY_BYTES)
    app.on_response_prepare.append(security_headers)
    app[CONFIG] = config
    app[CTX] = make_context(config, clock)
    app[METRICS] = Metrics()
    app[CTX].writes.on_batch = app[METRICS].group_commit
    app[SERVICES] = {
        "run_worker": worker,
        "dev_mail": dev_mail,
        "shared_events": shared_events,
        "metrics_socket": metrics_socket,
    }
    if config.testing and shared_events:
        app.on_response_prepare.append(_answered_by)
    app[DISPATCHER] = Dispatcher(app[CTX], retention=retention_policy(config))
    app[DISPATCHER].on_pruned = app[METRICS].pruned
    # First: an address that cannot be listened on stops the start before anything else was opened.
    app.cleanup_ctx.append(metrics_listener)  # SECUREMSG_METRICS_LISTEN: /metrics on its own port, else off
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_hub)
    for part in PARTS:
        app.cleanup_ctx.append(part)
    app.cleanup_ctx.append(_dispatcher)
    app.on_shutdown.append(_close_sockets)
    for table in openapi.API_TABLES:  # every API route, each with its OpenAPI operation (gateway/routing.py)
        app.add_routes(table)
    app.add_routes(portal_signin.routes)
    app.add_routes(portal_oidc.routes)
    app.add_routes(portal.routes)
    app.add_routes(portal_compose.routes)
    # The team's pages (sign-in, inbox, settings, records).
    for table in (
        team_signin.routes,
        team_reset.routes,
        team_password.routes,
        team_inbox.routes,
        team_exports.routes,
        team_devices.routes,
        team_people.routes,
        team_records.routes,
    ):
        app.add_routes(table)
    app.add_routes(wellknown.routes)  # the app-link files (docs/mobile.md)
    app.router.add_static("/static/", STATIC_DIR)
    if dev_mail:
        app.add_routes(devmail.routes)
    check_described(app)
    return app
