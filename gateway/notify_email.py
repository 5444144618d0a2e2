"""Email notifications on the outbox: the dispatcher's handlers for `client_email` (R16), `unread_check`
(R17), `signin_email` (R18) and `password_email` (R25: reset links and invitations), and the cleanup
context that builds the Mailer and registers them.

What to send is decided by `inbox.notify` (the rules are written there and in docs/notifications.md); this
module renders the templates, sends over one SMTP connection per batch and maps each email's outcome onto
the rows it settles, one to one: accepted → done, a temporary failure (4xx, refused, dropped, timeout) →
retry with backoff, a permanent one (5xx, a malformed address) → failed with the server's reply recorded.

A row is marked done the moment its email is accepted, not when the whole batch is over, so a worker killed
mid-batch leaves at most the one email in flight to be sent again (by whichever worker claims the row after
its lease runs out), and that resend carries the same Message-ID. Throttled rows are postponed, not failed.
Right before each email goes, its rows must still be held by this batch's claim (`outbox.still_held`); and
the record of an accepted email waits out a database restart (`outbox.until_recorded`) rather than being
lost, which would have the email sent again.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.config import Config
from gateway.dispatcher import JobOutcome
from gateway.keys import CONFIG, CTX, DISPATCHER, SERVICES
from gateway.metrics import METRICS, Metrics
from inbox import installation, notify, outbox, passwords
from inbox.context import InboxContext
from mailer import EmailRenderer, Mailer, OutgoingEmail, SendOutcome, SmtpSettings
from mailer.render import TEMPLATES_DIR

if TYPE_CHECKING:
    from inbox.models import OutboxJob


def smtp_settings(config: Config) -> SmtpSettings:
    return config.smtp()  # a bad combination stops the start with one line (ConfigError)


class EmailNotifier:
    def __init__(
        self, ctx: InboxContext, mailer: Mailer, renderer: EmailRenderer, metrics: Metrics | None = None
    ) -> None:
        self.ctx = ctx
        self.mailer = mailer
        self.renderer = renderer
        self.metrics = metrics or Metrics()
        self._installation: str | None = None  # this database's id, for the Message-IDs

    async def client_email(self, batch: Sequence[OutboxJob]) -> dict[int, JobOutcome]:
        plan = await notify.plan_message_emails(self.ctx, batch, outbox.CLIENT_EMAIL)
        return await self._run(batch, plan)

    async def unread_check(self, batch: Sequence[OutboxJob]) -> dict[int, JobOutcome]:
        plan = await notify.plan_message_emails(self.ctx, batch, outbox.UNREAD_CHECK)
        return await self._run(batch, plan)

    async def signin_email(self, batch: Sequence[OutboxJob]) -> dict[int, JobOutcome]:
        return await self._run(batch, await notify.plan_signin_emails(self.ctx, batch))

    async def password_email(self, batch: Sequence[OutboxJob]) -> dict[int, JobOutcome]:
        return await self._run(batch, await passwords.plan_emails(self.ctx, batch))

    async def _run(self, batch: Sequence[OutboxJob], plan: notify.Plan) -> dict[int, JobOutcome]:
        in_batch = {job.id for job in batch}
        results: dict[int, JobOutcome] = {}
        for job_id, decision in plan.decisions.items():
            if isinstance(decision, notify.Postpone):
                results[job_id] = JobOutcome.postponed(decision.why, decision.delay_s)
            else:
                results[job_id] = JobOutcome.skipped(decision.why)
        if not plan.emails:
            return results
        lease = outbox.current_lease()
        if lease is not None:
            lease.adopt(job for planned in plan.emails for job in planned.jobs)
        if self._installation is None:
            self._installation = await installation.installation_id(self.ctx)
        emails = [self._build(p, self._installation) for p in plan.emails]
        withdrawn: set[int] = set()

        async def may_send(index: int) -> bool:
            if await outbox.still_held(plan.emails[index].jobs):
                return True
            withdrawn.add(index)
            return False

        async def settle(index: int, sent: SendOutcome) -> None:
            planned = plan.emails[index]
            if index not in withdrawn:
                self.metrics.email(sent.ok, sent.temporary)
            if index in withdrawn:
                # Another worker holds these rows now: they are its to send and settle.
                outcome = JobOutcome.released("not sent: the claim was taken by another worker")
            elif sent.ok:
                outcome = JobOutcome.done(f"sent as {sent.message_id}")
                # Recorded now, before the next email goes out (see the module docstring).
                for job in planned.jobs:
                    await outbox.until_recorded(
                        functools.partial(outbox.finish, self.ctx, job, "done", outcome.note),
                        f"the email sent for outbox row {job.id}",
                    )
            elif sent.temporary:
                outcome = JobOutcome.retry(sent.error or "temporary SMTP failure")
            else:
                outcome = JobOutcome.failed(sent.error or "refused by the SMTP server")
            for job in planned.jobs:
                results[job.id] = outcome
                if not sent.ok and job.id not in in_batch:
                    # Taken in early (not due yet): it goes back to wait for its own time.
                    await outbox.until_recorded(
                        functools.partial(outbox.release, job), f"giving back outbox row {job.id}"
                    )

        await self.mailer.send_batch(emails, on_outcome=settle, may_send=may_send)
        return results

    def _build(self, planned: notify.PlannedEmail, installation_id: str) -> OutgoingEmail:
        rendered = self.renderer.render(planned.template, planned.context())
        return OutgoingEmail(
            to=planned.to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=notify.message_id_for(self.ctx, planned.lead_id, installation_id),
            from_name=planned.practice_name,
            headers={"X-Securemsg-Kind": planned.template},
        )


async def email_notifications(app: web.Application) -> AsyncIterator[None]:
    """A part (gateway.app.PARTS): the Mailer from the configuration, and its email handlers."""
    config = app[CONFIG]
    mailer = Mailer(smtp_settings(config))
    notifier = EmailNotifier(app[CTX], mailer, EmailRenderer(TEMPLATES_DIR), app[METRICS])
    dispatcher = app[DISPATCHER]
    dispatcher.register(outbox.CLIENT_EMAIL, notifier.client_email)
    dispatcher.register(outbox.UNREAD_CHECK, notifier.unread_check)
    dispatcher.register(outbox.SIGNIN_EMAIL, notifier.signin_email)
    dispatcher.register(outbox.PASSWORD_EMAIL, notifier.password_email)
    app[SERVICES]["mailer"] = mailer
    yield
