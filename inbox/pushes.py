"""What pushes say and to whom (R19, docs/api.md §5): the domain side of the push handlers, for phones
(APNs, FCM) and browsers (Web Push) alike.

Three outbox kinds, one recipient per row:
- `push` (written with every message by `outbox.enqueue_for_new_message`): a `new_message` alert to the
  recipient's devices that opted in to it.
- `push_appointment` (POST /events): an `appointment_alert`, `appointment_request` or `video_appointment`
  alert to the devices whose matching flag is on (`appointment_alert` answers to the flag `appointment`).
- `push_badge` (reading a conversation): a silent, badge-only update to the reader's other phones. Not to
  browsers: a browser must show every push it gets, so a silent one would become a notification.

A push holds the alert type, ids, a generic title, the badge (the recipient's unread total at the moment it
is sent) and a deep link (a new-message push also its https `web_link`, see `web_link`); never message
text, never a name, never a token.

Timing cases (each has a test in tests/gateway/test_push_*.py):
- The message was removed before its push went: skipped. `remove_message` cancels pending rows already;
  this catches a row that a worker had claimed just before.
- The recipient read the message before its push went (on the web, on another device): skipped. The read's
  own badge update brings the other phones' bubbles down.
- A retry (429, 5xx, no connection) tries again only the devices listed in `payload["pending"]`, so a device
  that already got the push never gets it twice; a device disabled, opted out or signed out meanwhile is
  dropped from the retry.
- Several badge updates for one person waiting in one batch: only the newest is sent (with the total then).
- An appointment alert or video appointment alert still unsent 15 minutes after the appointment started
  is moot and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from inbox import devices, messaging, outbox
from inbox.context import InboxContext
from inbox.errors import Invalid, NotFound
from inbox.ids import MAX_ID
from inbox.models import TEAM, Device, Message, OutboxJob, Participant
from inbox.store import devices as devices_store
from inbox.store import outbox as outbox_store
from inbox.store import recipients
from push.base import ALERT_FLAG_FOR, DEFAULT_TITLES, PushMessage

PUSH_NEW_MESSAGE = outbox.PUSH
PUSH_APPOINTMENT = "push_appointment"
PUSH_BADGE = "push_badge"
KINDS = (PUSH_NEW_MESSAGE, PUSH_APPOINTMENT, PUSH_BADGE)

APPOINTMENT_TYPES = ("appointment_alert", "appointment_request", "video_appointment")
# An "about to start" alert that could not go out until well after the start helps nobody.
MOOT_AFTER_START = {"appointment_alert": timedelta(minutes=15), "video_appointment": timedelta(minutes=15)}
# Far enough apart for any real appointment, near enough that date arithmetic cannot overflow.
EARLIEST_START = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_START = datetime(2999, 12, 31, tzinfo=UTC)
# Goes into a deep link and an apns-collapse-id (at most 64 bytes, "appointment-" included).
_APPOINTMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,47}")


@dataclass(frozen=True)
class Target:
    device_id: int
    platform: str  # apns | fcm | webpush
    message: PushMessage


@dataclass
class Plan:
    """What one outbox row sends now: a push per target device, or why nothing is sent."""

    targets: list[Target] = field(default_factory=list)
    skip: str | None = None


# --- writing the rows --------------------------------------------------------------------------------


def check_appointment_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**62:
        return str(value)
    if isinstance(value, str) and _APPOINTMENT_ID.fullmatch(value):
        return value
    raise Invalid(
        "invalid_appointment_id",
        "appointment_id must be a positive whole number or 1 to 48 characters from A-Z, a-z, 0-9 and . _ - "
        "(starting with a letter or digit).",
        field="appointment_id",
    )


def check_starts_at(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(
            "invalid_starts_at", "starts_at must be an ISO 8601 date and time.", field="starts_at"
        ) from None
    if when.tzinfo is None:
        raise Invalid(
            "invalid_starts_at",
            "starts_at must carry a time zone (e.g. 2026-01-05T15:00:00Z).",
            field="starts_at",
        )
    try:
        utc = when.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-12:00
        utc = None
    if utc is None or not EARLIEST_START <= utc <= LATEST_START:
        raise Invalid(
            "invalid_starts_at", "starts_at is not a plausible appointment time.", field="starts_at"
        )
    return utc


async def accept_event(
    ctx: InboxContext,
    practice_id: int,
    *,
    event_type: str,
    participant_id: int,
    appointment_id: Any,
    starts_at: str,
) -> OutboxJob:
    """POST /events: an appointment push for one participant of the calling practice, through the outbox."""
    if event_type not in APPOINTMENT_TYPES:
        raise Invalid(
            "invalid_event_type", f"type must be one of {', '.join(APPOINTMENT_TYPES)}.", field="type"
        )
    appointment = check_appointment_id(appointment_id)
    when = check_starts_at(starts_at)
    if not 0 < participant_id <= MAX_ID or not await recipients.get_participant_exists(
        practice_id, participant_id
    ):
        raise NotFound("participant")
    return await outbox.enqueue(
        ctx,
        PUSH_APPOINTMENT,
        practice_id=practice_id,
        recipient_id=participant_id,
        payload={
            "push_type": event_type,
            "appointment_id": appointment,
            "starts_at": messaging.iso(when),
        },
    )


async def enqueue_badge_update(
    ctx: InboxContext, participant: Participant, exclude_auth_token_id: int | None
) -> OutboxJob | None:
    """After a read: a silent badge update for the person's devices other than the reading session's.

    Nothing is written when there is no such device, or when an update for the same devices is already
    waiting (the badge is counted when the row is sent, so one row covers several reads).
    """
    if not await devices_store.get_has_other_phones(participant.id, exclude_auth_token_id):
        return None
    waiting = await outbox_store.list_unclaimed_pending(participant.id, PUSH_BADGE)
    for row in waiting:
        if row.payload.get("exclude_auth_token_id") == exclude_auth_token_id:
            return row
    return await outbox.enqueue(
        ctx,
        PUSH_BADGE,
        practice_id=participant.practice_id,
        recipient_id=participant.id,
        payload={"push_type": "badge", "exclude_auth_token_id": exclude_auth_token_id},
    )


# --- planning a batch --------------------------------------------------------------------------------


def web_link(ctx: InboxContext, person: Participant, conversation_id: int) -> str:
    """The https address of a conversation for this person: the page the apps' universal links and App Links
    take (gateway.wellknown), and that a browser opens when no app does. It names only the conversation,
    never a token: the app opens it with its own session, a browser with the portal's or the inbox's."""
    if person.kind == TEAM:
        return f"{ctx.public_url}/inbox?conversation={conversation_id}"
    return f"{ctx.public_url}/portal/c/{conversation_id}"


def _conversation_push(
    ctx: InboxContext, device: Device, person: Participant, conversation_id: int, badge: int
) -> PushMessage:
    return PushMessage(
        token=device.token,
        push_type="new_message",
        data={
            "conversation_id": str(conversation_id),
            "link": f"{ctx.app_link_scheme}://conversations/{conversation_id}",
            "web_link": web_link(ctx, person, conversation_id),
        },
        badge=badge,
        collapse_key=f"conversation-{conversation_id}",
        title=DEFAULT_TITLES["new_message"],
    )


def _appointment_push(
    ctx: InboxContext, device: Device, push_type: str, appointment_id: str, badge: int
) -> PushMessage:
    return PushMessage(
        token=device.token,
        push_type=push_type,
        data={
            "appointment_id": appointment_id,
            "link": f"{ctx.app_link_scheme}://appointments/{appointment_id}",
        },
        badge=badge,
        collapse_key=f"appointment-{appointment_id}",
        title=DEFAULT_TITLES[push_type],
    )


def _badge_push(device: Device, badge: int) -> PushMessage:
    return PushMessage(token=device.token, push_type="badge", data={}, badge=badge, collapse_key="badge")


def _messaging_off(p: Participant) -> str | None:
    """R3/R4: only a participant whose messaging is on (and, for clients, with portal access) is told."""
    if not p.messaging_enabled:
        return "the recipient's messaging is off"
    if p.kind != TEAM and not p.portal_access:
        return "the recipient has no portal access"
    return None


def _flag(job: OutboxJob) -> str | None:
    """The device alert flag this row answers to; None for a badge update (not an alert, always allowed)."""
    return ALERT_FLAG_FOR.get(str(job.payload.get("push_type", "new_message")))


def _badge_key(job: OutboxJob) -> tuple[int | None, Any]:
    return (job.recipient_id, job.payload.get("exclude_auth_token_id"))


@dataclass
class _Facts:
    """What a batch of rows needs from the database, loaded once for the whole batch."""

    people: dict[int, Participant]
    totals: dict[int, int]
    targets: dict[str | None, dict[int, list[Device]]]
    messages: dict[int, Message]
    read_upto: dict[tuple[int, int], int | None]


async def _load_facts(live: Sequence[OutboxJob]) -> _Facts:
    recipient_ids = list({j.recipient_id for j in live if j.recipient_id is not None})
    people = await recipients.get_people(recipient_ids)
    totals = await messaging.unread_totals(list(people))
    targets: dict[str | None, dict[int, list[Device]]] = {}
    for flag in {_flag(j) for j in live}:
        ids = [j.recipient_id for j in live if _flag(j) == flag and j.recipient_id is not None]
        targets[flag] = await devices.push_targets(ids, flag)
    message_jobs = [j for j in live if j.kind == PUSH_NEW_MESSAGE]
    message_ids = [j.message_id for j in message_jobs if j.message_id]
    messages = await recipients.get_messages(message_ids) if message_ids else {}
    read_upto: dict[tuple[int, int], int | None] = {}
    if message_jobs:
        read_upto = await recipients.get_read_upto(
            list({j.conversation_id for j in message_jobs if j.conversation_id}),
            list({j.recipient_id for j in message_jobs if j.recipient_id}),
        )
    return _Facts(people, totals, targets, messages, read_upto)


def _why_moot(ctx: InboxContext, job: OutboxJob, person: Participant, facts: _Facts) -> str | None:
    if job.kind == PUSH_NEW_MESSAGE:
        msg = facts.messages.get(job.message_id or -1)
        if msg is None or job.conversation_id is None:
            return "the message no longer exists"
        if msg.removed_at is not None:
            return "message removed"
        key = (job.conversation_id, person.id)
        if key not in facts.read_upto:
            return "the recipient is not in the conversation"
        if (facts.read_upto[key] or 0) >= msg.id:
            return "already read"
        return _messaging_off(person)
    if job.kind == PUSH_APPOINTMENT:
        push_type = str(job.payload.get("push_type"))
        if push_type not in APPOINTMENT_TYPES:
            return f"unknown appointment push type {push_type!r}"
        grace = MOOT_AFTER_START.get(push_type)
        starts_at = datetime.fromisoformat(str(job.payload.get("starts_at")))
        if grace is not None and ctx.clock.now() > starts_at + grace:
            return "the appointment has already started"
    return None


def _message_for(
    ctx: InboxContext, job: OutboxJob, person: Participant, device: Device, badge: int
) -> PushMessage:
    if job.kind == PUSH_NEW_MESSAGE:
        assert job.conversation_id is not None
        return _conversation_push(ctx, device, person, job.conversation_id, badge)
    if job.kind == PUSH_APPOINTMENT:
        push_type = str(job.payload["push_type"])
        return _appointment_push(ctx, device, push_type, str(job.payload["appointment_id"]), badge)
    return _badge_push(device, badge)


async def plan_jobs(ctx: InboxContext, jobs: Sequence[OutboxJob]) -> dict[int, Plan]:
    """Decide, for a batch of push rows, which devices get what now."""
    plans: dict[int, Plan] = {}
    newest_badge: dict[tuple[int | None, Any], int] = {}
    for job in jobs:
        if job.kind == PUSH_BADGE:
            newest_badge[_badge_key(job)] = max(newest_badge.get(_badge_key(job), 0), job.id)
    live: list[OutboxJob] = []
    for job in jobs:
        if job.recipient_id is None:
            plans[job.id] = Plan(skip="no recipient")
        elif job.kind == PUSH_BADGE and newest_badge[_badge_key(job)] != job.id:
            plans[job.id] = Plan(skip="superseded by a newer badge update")
        else:
            live.append(job)
    facts = await _load_facts(live)
    for job in live:
        person = facts.people.get(job.recipient_id or -1)
        if person is None:
            plans[job.id] = Plan(skip="the recipient no longer exists")
            continue
        if person.kind == TEAM and not person.active:
            plans[job.id] = Plan(skip="the recipient's account is deactivated (R26)")
            continue
        if (why := _why_moot(ctx, job, person, facts)) is not None:
            plans[job.id] = Plan(skip=why)
            continue
        chosen = facts.targets.get(_flag(job), {}).get(person.id, [])
        if job.kind == PUSH_BADGE:
            chosen = [d for d in chosen if d.platform != "webpush"]
            if (exclude := job.payload.get("exclude_auth_token_id")) is not None:
                chosen = [d for d in chosen if d.auth_token_id != exclude]
        pending = job.payload.get("pending")
        if pending is not None:
            chosen = [d for d in chosen if d.id in set(pending)]
        if not chosen:
            plans[job.id] = Plan(
                skip="no device to push to" if pending is None else "no device left to retry"
            )
            continue
        badge = facts.totals.get(person.id, 0)
        targets = []
        for d in chosen:
            message = _message_for(ctx, job, person, d, badge)
            if d.platform == "webpush":
                sub = devices.subscription_of(ctx, d)
                if sub is None:  # registered before its subscription was sealed: nothing to send to
                    continue
                message = replace(message, token=sub.endpoint, keys=sub.keys)
            targets.append(Target(d.id, d.platform, message))
        plans[job.id] = Plan(targets=targets) if targets else Plan(skip="no device to push to")
    return plans


async def keep_pending(job: OutboxJob, device_ids: Sequence[int]) -> None:
    """Remember which devices still need this push, so the retry goes to them alone."""
    payload = {**job.payload, "pending": sorted(set(device_ids))}
    await outbox_store.set_payload(job, payload)
