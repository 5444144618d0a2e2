"""Outgoing webhooks, wired: one HTTP client session, and the dispatcher's `webhook` handler.

Each outbox row is one delivery: an HTTP POST of the stored body, signed (see inbox.webhooks), without
following redirects, bounded by a timeout. 2xx is delivered; 408, 429 (its Retry-After honoured), 5xx,
a timeout or a connection error is retried with the outbox's backoff; any other answer is permanent.
Only public addresses are reached (gateway.public_resolver) unless SECUREMSG_WEBHOOK_ALLOW_PRIVATE is set;
a refused address fails the delivery at once.
After a day of failures the delivery is marked failed, like its outbox row. A delivery goes only while this
worker's claim still holds its row (`outbox.still_held`), and its outcome is recorded even across a
database restart (`outbox.until_recorded`), so a delivered webhook is not posted again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from gateway.dispatcher import JobOutcome
from gateway.keys import CONFIG, CTX, DISPATCHER, SERVICES
from gateway.metrics import METRICS, Metrics, webhook_reason
from gateway.public_resolver import NotPublic, PublicOnlyResolver, refused_literal, was_refused
from inbox import outbox, webhooks
from inbox.context import InboxContext
from push.base import parse_retry_after

if TYPE_CHECKING:
    from inbox.models import OutboxJob

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
USER_AGENT = "securemsg-webhooks/1"
_RETRY_STATUSES = frozenset({408, 429})
REFUSED = "refused: not a public address"
CONNECTION_FAILED = "connection failed"


async def webhook_part(app: web.Application) -> AsyncIterator[None]:
    allow_private = app[CONFIG].webhook_allow_private
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=None if allow_private else PublicOnlyResolver()),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )
    app[SERVICES]["webhook_session"] = session
    sender = WebhookSender(app[CTX], session, allow_private=allow_private, metrics=app[METRICS])
    app[DISPATCHER].register(webhooks.WEBHOOK, sender.handle)
    try:
        yield
    finally:
        await session.close()


class WebhookSender:
    def __init__(
        self,
        ctx: InboxContext,
        session: aiohttp.ClientSession,
        *,
        allow_private: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.ctx = ctx
        self.session = session
        self.allow_private = allow_private
        self.metrics = metrics or Metrics()

    async def handle(self, batch: Sequence[OutboxJob]) -> dict[int, JobOutcome]:
        outcomes = await asyncio.gather(*(self._deliver(job) for job in batch))
        return {job.id: outcome for job, outcome in zip(batch, outcomes, strict=True)}

    async def _deliver(self, job: OutboxJob) -> JobOutcome:
        loaded = await webhooks.load_delivery(job)
        if isinstance(loaded, str):
            return JobOutcome.skipped(loaded)
        delivery, hook = loaded
        if not await outbox.still_held([job]):
            return JobOutcome.released("not sent: the claim was taken by another worker")
        body = webhooks.body_bytes(delivery)
        timestamp = int(self.ctx.clock.now().timestamp())
        headers = webhooks.signed_headers(self.ctx.keyring, hook, delivery, timestamp, body)
        status_code: int | None = None
        retry_after: float | None = None
        # The delivery log says only which of these it was: a socket error's text ("connection refused"
        # against "no route") would tell whoever reads the log what listens where.
        try:
            if not self.allow_private and refused_literal(hook.url):
                raise NotPublic("not a public address")
            async with self.session.post(hook.url, data=body, headers=headers, allow_redirects=False) as resp:
                status_code = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                await resp.content.read(4096)  # a little of the answer, so the connection can be reused
            error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
            temporary = status_code in _RETRY_STATUSES or status_code >= 500
            reason = webhook_reason(status_code)
        except TimeoutError:
            error, temporary, reason = f"no answer within {TIMEOUT_S:g} s", True, "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            if was_refused(exc):
                # Permanent: trying again would only ask the network the same question.
                error, temporary, reason = REFUSED, False, "refused"
            else:
                error, temporary, reason = CONNECTION_FAILED, True, "connection_failed"
        self.metrics.webhook(reason)

        def record(status: str) -> Callable[[], Awaitable[None]]:
            return functools.partial(
                webhooks.record_attempt,
                self.ctx,
                delivery,
                status=status,
                status_code=status_code,
                error=error,
            )

        what = f"the webhook attempt of outbox row {job.id}"
        if error is None:
            await outbox.until_recorded(record("delivered"), what)
            return JobOutcome.done(f"HTTP {status_code}")
        age = (self.ctx.clock.now() - job.created_at).total_seconds()
        if temporary and age < outbox.GIVE_UP_AFTER_S:
            await outbox.until_recorded(record("pending"), what)
            return JobOutcome.retry(error, retry_after)
        if temporary:
            error = f"gave up after a day: {error}"
        await outbox.until_recorded(record("failed"), what)
        log.warning("webhook %s: delivery %s failed for good (%s)", hook.id, delivery.delivery_id, error)
        return JobOutcome.failed(error)
