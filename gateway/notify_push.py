"""Push, wired: providers built from the configuration, and the dispatcher's three push handlers.

`push_part` is a cleanup context (app.PARTS). It builds the providers inside the running loop, says once at
start which ones are off for lack of credentials, keeps them in app[SERVICES]["push"], registers the
handlers and closes the providers on the way out. A provider's TLS trust follows the system store and
SSL_CERT_FILE (docs/api.md §5).

Web Push is always on: its VAPID key is made on first start (`vapid_pem_of`), and a browser's endpoint is
reached through a session of its own that connects only to public addresses (gateway.public_resolver, as
webhooks), unless SECUREMSG_WEBPUSH_ALLOW_PRIVATE is set.

The handler sends each row's pushes (inbox.pushes decides which and what) and acts on what the providers
answer: a dead token disables its device at once; a temporary failure (429, 5xx, no connection) retries the
row later, for the devices that still need it only, after at least the Retry-After the provider asked for;
a permanent failure has been logged once by the provider and is not retried. A row goes only while this
worker's claim still holds it (`outbox.still_held`), and what the providers answered is recorded even
across a database restart (`outbox.until_recorded`), so a delivered push is not delivered again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from gateway.config import Config, ConfigError, vapid_pem_of, webpush_subject_of
from gateway.dispatcher import JobOutcome
from gateway.keys import CONFIG, CTX, DISPATCHER, SERVICES
from gateway.metrics import METRICS, Metrics
from gateway.public_resolver import PublicOnlyResolver, refused_literal, was_refused
from inbox import devices, outbox, pushes
from inbox.context import InboxContext
from push import ApnsSettings, FcmSettings, PushProvider, WebPushProvider, WebPushSettings, build_providers

WEBPUSH_KEY = "webpush_public_key"  # app[SERVICES]: the VAPID public key browsers subscribe with
WEBPUSH_USER_AGENT = "securemsg-webpush/1"
# What a device's settings say when its push service gave it up (Device.disabled_reason).
DEAD_REASONS = {"webpush": "the browser's push service ended this subscription"}

if TYPE_CHECKING:
    from inbox.models import OutboxJob

log = logging.getLogger(__name__)


def provider_settings(config: Config) -> tuple[ApnsSettings | None, FcmSettings | None, list[str]]:
    """Settings for each configured provider, and a line for each one that is off. A configured provider
    whose settings cannot work stops the start (ConfigError: one line, exit status 2)."""
    off: list[str] = []
    apns = fcm = None
    if config.apns_key_file:
        try:
            apns = ApnsSettings.from_key_file(
                config.apns_key_file,
                key_id=config.apns_key_id or "",
                team_id=config.apns_team_id or "",
                topic=config.apns_topic or "",
                endpoint=config.apns_endpoint,
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"SECUREMSG_APNS_KEY_FILE: {exc}") from None
    else:
        off.append("APNs is off: SECUREMSG_APNS_KEY_FILE is not set")
    if config.fcm_credentials_file:
        try:
            fcm = FcmSettings(credentials_file=config.fcm_credentials_file, endpoint=config.fcm_endpoint)
        except ValueError as exc:
            raise ConfigError(f"SECUREMSG_FCM_CREDENTIALS_FILE: {exc}") from None
    else:
        off.append("FCM is off: SECUREMSG_FCM_CREDENTIALS_FILE is not set")
    return apns, fcm, off


def webpush_settings(config: Config) -> WebPushSettings:
    try:
        return WebPushSettings(vapid_pem=vapid_pem_of(config), subject=webpush_subject_of(config))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Web Push: {exc}") from None


def webpush_session(config: Config) -> aiohttp.ClientSession:
    """Browsers' push services, reached at public addresses only (unless allowed), with the system's trust
    store read now (so SSL_CERT_FILE counts), never through a proxy from the environment."""
    resolver = None if config.webpush_allow_private else PublicOnlyResolver()
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver, ssl=ssl.create_default_context()),
        headers={"User-Agent": WEBPUSH_USER_AGENT},
        trust_env=False,
    )


def _refuse_endpoint(url: str) -> str | None:
    return "the endpoint is not a public address" if refused_literal(url) else None


async def push_part(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    apns, fcm, off = provider_settings(config)
    web_settings = webpush_settings(config)
    session = webpush_session(config)
    try:
        webpush = WebPushProvider(
            web_settings,
            session,
            refuse_url=None if config.webpush_allow_private else _refuse_endpoint,
            refused_error=was_refused,
        )
        providers = build_providers(apns, fcm, webpush)
    except ValueError as exc:  # e.g. an FCM file that is not a service account
        await session.close()
        raise ConfigError(f"SECUREMSG_FCM_CREDENTIALS_FILE: {exc}") from None
    for line in off:
        log.warning("push: %s; pushes for its devices are skipped", line)
    app[SERVICES]["push"] = providers
    app[SERVICES][WEBPUSH_KEY] = webpush.public_key
    sender = PushSender(app[CTX], providers, app[METRICS])
    for kind in pushes.KINDS:
        app[DISPATCHER].register(kind, sender.handle)
    try:
        yield
    finally:
        for provider in providers.values():
            await provider.close()
        await session.close()


class PushSender:
    def __init__(
        self, ctx: InboxContext, providers: dict[str, PushProvider], metrics: Metrics | None = None
    ) -> None:
        self.ctx = ctx
        self.providers = providers
        self.metrics = metrics or Metrics()

    async def handle(self, batch: Sequence[OutboxJob]) -> dict[int, JobOutcome]:
        plans = await pushes.plan_jobs(self.ctx, batch)
        outcomes = await asyncio.gather(*(self._deliver(job, plans[job.id]) for job in batch))
        return {job.id: outcome for job, outcome in zip(batch, outcomes, strict=True)}

    async def _deliver(self, job: OutboxJob, plan: pushes.Plan) -> JobOutcome:
        if plan.skip is not None:
            return JobOutcome.skipped(plan.skip)
        if not await outbox.still_held([job]):
            return JobOutcome.released("not sent: the claim was taken by another worker")
        by_platform: dict[str, list[pushes.Target]] = {}
        for target in plan.targets:
            by_platform.setdefault(target.platform, []).append(target)
        delivered: list[int] = []
        dead: dict[int, str] = {}
        retry: list[int] = []
        failed: list[str] = []
        off: list[str] = []
        retry_after: float | None = None
        sends = {
            platform: self.providers[platform].send([t.message for t in targets])
            for platform, targets in by_platform.items()
            if platform in self.providers
        }
        results = dict(zip(sends, await asyncio.gather(*sends.values()), strict=True))
        for platform, targets in by_platform.items():
            result = results.get(platform)
            if result is None:
                off.append(platform)
                continue
            tally = {"dead_token": 0, "temporary": 0, "permanent": 0}
            for target in targets:
                token = target.message.token
                if token in result.delivered:
                    delivered.append(target.device_id)
                    continue
                if token in result.dead_tokens:
                    dead[target.device_id] = DEAD_REASONS.get(platform, f"{platform} reported the token dead")
                    tally["dead_token"] += 1
                elif token in result.retry_tokens:
                    retry.append(target.device_id)
                    tally["temporary"] += 1
                else:
                    failed.append(result.failed.get(token, "no answer"))
                    tally["permanent"] += 1
            self.metrics.push(platform, sent=len(targets) - sum(tally.values()), failed=tally)
            if result.retry_after is not None:
                retry_after = max(retry_after or 0.0, result.retry_after)
        if dead:
            disabled = await outbox.until_recorded(
                functools.partial(devices.disable, dead), "dead device tokens"
            )
            for target in plan.targets:
                if target.device_id in disabled:
                    self.metrics.tokens_disabled_by(target.platform, 1)
        note = f"delivered to {len(delivered)}, dead {len(dead)}, failed {len(failed)}"
        if retry:
            await outbox.until_recorded(
                functools.partial(pushes.keep_pending, job, retry),
                f"the devices left for outbox row {job.id}",
            )
            return JobOutcome.retry(f"{note}; {len(retry)} to retry", retry_after)
        if off and not (delivered or dead or failed):
            return JobOutcome.skipped(f"{' and '.join(off)} off: no credentials configured")
        if failed and not delivered and not dead:
            return JobOutcome.failed(f"{note}: {'; '.join(sorted(set(failed)))}"[:2000])
        return JobOutcome.done(note)
