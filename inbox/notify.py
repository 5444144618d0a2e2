"""Which notification emails to send for a batch of claimed outbox rows, and which rows have become moot.

The dispatcher claims rows; this module decides, from the database as it is *now*, and the gateway then
sends what it planned (`gateway.notify_email`). The rules, also in docs/notifications.md:

New-message email (`client_email`, R16) — to a client or contact, at once:
  "You have a new secure message from <practice>" and a notification link into the portal (24 h).

Unread email (`unread_check`, R17) — to any recipient, due at sent + the practice's delay (10–20 min):
  "You have an unread secure message from <practice>" and a link (a notification link for clients and
  contacts, `{public_url}/inbox?conversation={id}` for team members).

For both kinds, a row is dropped (skipped, with the reason recorded) when, at the moment of sending:
  - the message was removed (R14), or the recipient has left the conversation;
  - the recipient has read it: their `last_read_message_id` in the conversation is at or past it (the
    "read in time" case; reading on any device counts, since read state is per participant);
  - the recipient may no longer be reached: a client or contact whose messaging or portal access is off, or
    whose client's is (R4, R10), or the practice's client messaging is off (R1); a team member whose own
    messaging is off (R3) or the practice's team messaging is off;
  - an email about the same conversation already went to the recipient *after* the message was sent (it
    said "you have a message waiting" while this one was among them): "covered";
  - it is an unread check for a client or contact whose new-message email for that same message was sent,
    is still being tried, or was itself covered: a client is told about a message once, not twice (the
    R16 email is already the "secure message waiting" email that R17 asks for). Only if that email was
    given up on does the unread email go.

Grouping: the claimed rows of one kind that survive the checks give one email per recipient, however many
messages and conversations they are about. An unread email also takes in the recipient's unread checks that
are not due yet, for messages already sent and still unread (they are claimed and settled with it): R17's
"several unread messages in that window give one email" — the window opens with the first unread message.
The link opens the conversation when the email is about one; when it is about several, it opens the list of
conversations (the portal for clients and contacts, `/inbox` for team members). The email's Message-ID is
`<outbox-{id}@{host}>` for the smallest row id in the group, so a resend after a crash carries the same
Message-ID.

Throttle, per recipient and conversation: while an email about a conversation went to the recipient less
than an hour ago and the message it was about is still unread, no second email about that conversation is
sent; the row is postponed to one hour after that earlier email and decided again then (by when the person
may have read everything, and the row is dropped, or a new email goes). So a busy thread mails someone at
most once an hour while they are not reading it, and at once again after they have read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from inbox import links, outbox
from inbox.context import InboxContext
from inbox.models import (
    CONTACT,
    TEAM,
    ConversationMember,
    Message,
    OutboxJob,
    Participant,
    Practice,
)
from inbox.outbox import CLIENT_EMAIL, UNREAD_CHECK
from inbox.store import outbox as outbox_store
from inbox.store import recipients

THROTTLE_S = 3600
EMAIL_KINDS = (CLIENT_EMAIL, UNREAD_CHECK)
TEMPLATES = {CLIENT_EMAIL: "client_new_message", UNREAD_CHECK: "unread_reminder"}
SIGNIN_TEMPLATE = "sign_in_link"


@dataclass(frozen=True)
class Skip:
    why: str


@dataclass(frozen=True)
class Postpone:
    delay_s: float
    why: str


@dataclass
class PlannedEmail:
    template: str
    to: str
    practice_name: str
    link: str
    expires_text: str | None  # None: the link does not expire (a team member's inbox link)
    jobs: list[OutboxJob]  # the rows this email settles, the one that names it first

    @property
    def lead_id(self) -> int:
        return self.jobs[0].id

    def context(self) -> dict[str, str]:
        ctx = {"practice_name": self.practice_name, "link": self.link}
        if self.expires_text is not None:
            ctx["expires_text"] = self.expires_text
        return ctx


@dataclass
class Plan:
    emails: list[PlannedEmail] = field(default_factory=list)
    decisions: dict[int, Skip | Postpone] = field(default_factory=dict)


def message_id_for(ctx: InboxContext, job_id: int, installation_id: str) -> str:
    """The same for every resend of the email of the row `job_id` (the lowest of its group), and unique
    to this database (`inbox.installation`): a database made anew under the same host starts its row ids
    again, and a mail provider drops or threads an email whose Message-ID it has seen before."""
    host = urlsplit(ctx.public_url).hostname or "localhost"
    return f"<outbox-{job_id}.{installation_id}@{host}>"


def duration_text(seconds: int) -> str:
    """86400 → "24 hours", 900 → "15 minutes": how long a link works, for the email's wording."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


# --- who may still be reached ------------------------------------------------------------------------


def unreachable_because(
    person: Participant, clients: dict[int, Participant], practice: Practice
) -> str | None:
    if person.kind == TEAM:
        if not person.active:
            return "the recipient's account is deactivated (R26)"
        if not practice.team_messaging_enabled:
            return "the practice's team messaging is off"
        if not person.messaging_enabled:
            return "the recipient's messaging is off (R3)"
        return None
    if not practice.client_messaging_enabled:
        return "the practice's client messaging is off (R1)"
    if not (person.messaging_enabled and person.portal_access):
        return "the recipient's messaging or portal access is off (R4)"
    if person.kind == CONTACT:
        client = clients.get(person.client_id or 0)
        if client is None or not (client.messaging_enabled and client.portal_access):
            return "the client's messaging or portal access is off (R4, R10)"
    return None


# --- new-message and unread emails -------------------------------------------------------------------


@dataclass
class _Facts:
    """What the decisions need, loaded once for a batch of rows (and the rows it may sweep in)."""

    now: datetime
    kind: str
    msgs: dict[int, Message]
    people: dict[int, Participant]
    clients: dict[int, Participant]
    practices: dict[int, Practice]
    members: dict[tuple[int, int], ConversationMember]
    sent_before: dict[tuple[int, int], list[OutboxJob]]
    told_at_once: set[tuple[int, int]]

    @classmethod
    async def load(cls, ctx: InboxContext, kind: str, rows: Sequence[OutboxJob]) -> _Facts:
        now = ctx.clock.now()
        msgs = await recipients.get_messages([j.message_id for j in rows if j.message_id])
        recipient_ids = list({j.recipient_id for j in rows if j.recipient_id})
        people = await recipients.get_people(recipient_ids)
        client_ids = [p.client_id for p in people.values() if p.kind == CONTACT and p.client_id]
        clients = await recipients.get_people(client_ids) if client_ids else {}
        practices = await recipients.get_practices(list({j.practice_id for j in rows}))
        members = await recipients.get_memberships(
            list({j.conversation_id for j in rows if j.conversation_id}), recipient_ids
        )
        since = min([m.created_at for m in msgs.values()] + [now - timedelta(seconds=THROTTLE_S)])
        sent_before: dict[tuple[int, int], list[OutboxJob]] = defaultdict(list)
        for row in await outbox_store.list_done_since(
            recipient_ids, EMAIL_KINDS, since, [j.id for j in rows]
        ):
            sent_before[(row.recipient_id or 0, row.conversation_id or 0)].append(row)
        told_at_once: set[tuple[int, int]] = set()
        if kind == UNREAD_CHECK:
            told = await outbox_store.list_not_failed(CLIENT_EMAIL, list(msgs), recipient_ids)
            told_at_once = {(r.recipient_id or 0, r.message_id or 0) for r in told}
        return cls(now, kind, msgs, people, clients, practices, members, sent_before, told_at_once)

    def decide(self, job: OutboxJob) -> Skip | Postpone | None:
        """None: email about this row. Otherwise why not (now, or not yet)."""
        msg = self.msgs.get(job.message_id or 0)
        person = self.people.get(job.recipient_id or 0)
        practice = self.practices.get(job.practice_id or 0)
        member = self.members.get((job.conversation_id or 0, job.recipient_id or 0))
        if msg is None or person is None or practice is None or member is None:
            return Skip("the message or the recipient is gone")
        if msg.removed_at is not None:
            return Skip("message removed (R14)")
        last_read = member.last_read_message_id or 0
        if last_read >= msg.id:
            return Skip("read in time")
        why = unreachable_because(person, self.clients, practice)
        if why:
            return Skip(why)
        if self.kind == UNREAD_CHECK and person.kind != TEAM and (person.id, msg.id) in self.told_at_once:
            return Skip("covered by the new-message email (R16)")
        earlier = self.sent_before.get((person.id, msg.conversation_id), [])
        covering = [r.id for r in earlier if _finished(r) > msg.created_at]
        if covering:
            return Skip(f"covered by the email of outbox row {min(covering)}")
        window_start = self.now - timedelta(seconds=THROTTLE_S)
        holding = [
            _finished(r) for r in earlier if _finished(r) > window_start and (r.message_id or 0) > last_read
        ]
        if holding:
            until = max(holding) + timedelta(seconds=THROTTLE_S)
            return Postpone(
                max(1.0, (until - self.now).total_seconds()),
                "throttled: an email about this conversation went out less than an hour ago and is unread",
            )
        return None


async def plan_message_emails(ctx: InboxContext, jobs: Sequence[OutboxJob], kind: str) -> Plan:
    """Decide, for claimed rows of one kind (`client_email` or `unread_check`), what to send and what to
    drop or postpone (see the module docstring)."""
    plan = Plan()
    if not jobs:
        return plan
    # Unread checks not due yet, for the same people: messages in the same window join the email.
    later: list[OutboxJob] = []
    if kind == UNREAD_CHECK:
        later = await outbox_store.list_pending(
            UNREAD_CHECK, list({j.recipient_id for j in jobs if j.recipient_id}), [j.id for j in jobs]
        )
    facts = await _Facts.load(ctx, kind, [*jobs, *later])

    to_send: dict[int, list[OutboxJob]] = defaultdict(list)
    for job in jobs:
        decision = facts.decide(job)
        if decision is None:
            to_send[job.recipient_id or 0].append(job)
        else:
            plan.decisions[job.id] = decision
    joining = [j for j in later if j.recipient_id in to_send and facts.decide(j) is None]
    for job in await outbox.claim_rows(ctx, jobs[0].claimed_by or "", [j.id for j in joining]):
        to_send[job.recipient_id or 0].append(job)

    for person_id, group in to_send.items():
        group.sort(key=lambda j: j.id)
        person = facts.people[person_id]
        conversations = {j.conversation_id for j in group}
        # One conversation: the link opens it. Several: the list of conversations, where they all show.
        only = conversations.pop() if len(conversations) == 1 else None
        if person.kind == TEAM:
            link = f"{ctx.public_url}/inbox" + (f"?conversation={only}" if only else "")
            expires: str | None = None
        else:
            link = await links.issue_notify_link(ctx, person, only)
            expires = duration_text(ctx.link_ttl_s)
        plan.emails.append(
            PlannedEmail(
                template=TEMPLATES[kind],
                to=person.email,
                practice_name=facts.practices[group[0].practice_id or 0].name,
                link=link,
                expires_text=expires,
                jobs=group,
            )
        )
    return plan


def _finished(row: OutboxJob) -> datetime:
    assert row.finished_at is not None
    return row.finished_at


# --- Instant Sign In emails --------------------------------------------------------------------------


def newest_per_recipient(plan: Plan, jobs: Sequence[OutboxJob], nobody: str) -> dict[int, OutboxJob]:
    """Of several link requests waiting for one person, only the newest is sent (its link is the only one
    that would work anyway): the older ones, and those for an address nobody has (`nobody`: why), are
    skipped in `plan`. The newest request of each person, by person."""
    newest: dict[int, OutboxJob] = {}
    for job in sorted(jobs, key=lambda j: j.id):
        if job.recipient_id is None:
            plan.decisions[job.id] = Skip(nobody)
            continue
        older = newest.get(job.recipient_id)
        if older is not None:
            plan.decisions[older.id] = Skip(f"superseded by the newer request in outbox row {job.id}")
        newest[job.recipient_id] = job
    return newest


async def plan_signin_emails(ctx: InboxContext, jobs: Sequence[OutboxJob]) -> Plan:
    """One email with a fresh sign-in link per person; of several requests waiting for one person only
    the newest is sent (its link is the only one that would work anyway)."""
    plan = Plan()
    newest = newest_per_recipient(plan, jobs, "nobody who may use the portal has that address")
    if not newest:
        return plan
    people = await recipients.get_people(list(newest))
    practices = await recipients.get_practices([p.practice_id for p in people.values()])
    for person_id, job in newest.items():
        person = people.get(person_id)
        if person is None or not await links.may_use_portal(person):
            plan.decisions[job.id] = Skip("the person may not use the portal (R4)")
            continue
        plan.emails.append(
            PlannedEmail(
                template=SIGNIN_TEMPLATE,
                to=person.email,
                practice_name=practices[person.practice_id].name,
                link=await links.issue_signin_link(ctx, person),
                expires_text=duration_text(ctx.signin_link_ttl_s),
                jobs=[job],
            )
        )
    return plan
