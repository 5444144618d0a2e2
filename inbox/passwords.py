"""A team member's own password (R25): changing it, resetting it by email, and the invitation that lets a new
member choose one.

- `change` needs the current password; the session or token used for it stays, every other one ends
  (`access.end_access`), and so does every trusted device.
- A reset is asked for with an address (`request_reset`). The answer, and the work behind it, are the same
  whether or not the address is known — one indexed lookup and one insert, like `links.request_signin` —
  and the link is made only when the email is sent, so no usable token is ever stored.
- An invitation (`invite`): a new member created without a password gets the same kind of link, valid for
  7 days instead of 30 minutes.
- The link (`/reset/{token}`) works once, and only the newest one of a person works: issuing one revokes
  the older ones. Opening it (GET, `resolve`) changes nothing, so a mail scanner cannot burn it; only the
  form's POST uses it up (`set_with_link`), and that also ends every session, token and trusted device.

Each change takes `then`: the caller's audit row (R24), written in the change's own transaction, after the
slow password hashing and before the commit, so the change and its row commit together or neither does.

Tokens are random and only their keyed hash is stored (`portal_links.hash_token`), as `LinkToken` rows with
the purposes `reset` and `invite`; a deactivation revokes them with the person's other links.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from inbox import db, outbox
from inbox.access import end_access
from inbox.accounts import (
    check_new_password,
    create_team_member,
    hash_password,
    team_accounts,
    verify_password,
)
from inbox.context import InboxContext
from inbox.errors import Forbidden
from inbox.models import LinkToken, OutboxJob, Participant
from inbox.notify import Plan, PlannedEmail, Skip, duration_text, newest_per_recipient
from inbox.store import links as link_store
from inbox.store import outbox as outbox_store
from inbox.store import people as people_store
from inbox.store import practices as practices_store
from portal_links import hash_token, link_for, new_token

RESET = "reset"
INVITE = "invite"
RESET_TTL_S = 30 * 60
INVITE_TTL_S = 7 * 86400
TEMPLATES = {RESET: "password_reset", INVITE: "invitation"}
_TTL = {RESET: RESET_TTL_S, INVITE: INVITE_TTL_S}
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,200}$")

# In the change's transaction, with how many sessions and tokens ended: where the caller writes its audit row.
Ended = Callable[[int], Awaitable[object]]


# --- changing one's own password ----------------------------------------------------------------------


async def change(
    ctx: InboxContext,
    member: Participant,
    current: str,
    new: str,
    *,
    keep_token_id: int | None,
    then: Ended | None = None,
) -> int:
    """The member's own change: the current password first. How many other sessions and tokens ended."""
    if not await verify_password(member.password_hash, current):
        raise Forbidden("wrong_password", "The current password is not right.", field="current_password")
    check_new_password(new, "new_password")
    member.password_hash = await hash_password(new)
    async with db.transaction():
        await people_store.set_password_hash(member)
        ended = await end_access(ctx, member, keep_token_id=keep_token_id)
        if then is not None:
            await then(ended)
    return ended


# --- asking for a link --------------------------------------------------------------------------------


async def request_reset(ctx: InboxContext, email: str) -> None:
    """Queue a reset email for every active team account with this address (one per practice at most)."""
    people = [p for p in await team_accounts(email) if p.active]
    now = ctx.clock.now()
    rows: list[dict[str, Any]] = [
        {
            "kind": outbox.PASSWORD_EMAIL,
            "due_at": now,
            "created_at": now,
            "practice_id": p.practice_id,
            "recipient_id": p.id,
            "payload": {"purpose": RESET},
        }
        for p in people
    ] or [{"kind": outbox.PASSWORD_EMAIL, "due_at": now, "created_at": now, "payload": {"purpose": RESET}}]
    await outbox_store.add_rows(rows)


async def add_team_member(
    ctx: InboxContext,
    practice_id: int,
    *,
    then: Callable[[Participant], Awaitable[object]] | None = None,
    **fields: Any,
) -> Participant:
    """`accounts.create_team_member`; without a password, the new member is invited by email in the same
    transaction (the normal way in: nobody but the member ever knows the password). `then`: the caller's
    audit row, in that transaction too."""
    if fields.get("password") is not None:
        return await create_team_member(ctx, practice_id, then=then, **fields)
    async with db.transaction():
        member = await create_team_member(ctx, practice_id, **fields)
        await invite(ctx, member)
        if then is not None:
            await then(member)
    return member


async def invite(ctx: InboxContext, member: Participant) -> None:
    """Queue the invitation email of a new member."""
    await outbox.enqueue(
        ctx,
        outbox.PASSWORD_EMAIL,
        practice_id=member.practice_id,
        recipient_id=member.id,
        payload={"purpose": INVITE},
    )


# --- the emails ---------------------------------------------------------------------------------------


async def issue_link(ctx: InboxContext, member: Participant, purpose: str) -> str:
    """The absolute URL `/reset/{token}`. Only the newest link of a person works, whichever its purpose."""
    now = ctx.clock.now()
    await link_store.set_live_links_revoked(member.id, [RESET, INVITE], now)
    token = new_token()
    await link_store.add_link(
        hash_token(token, ctx.secret),
        purpose,
        member.id,
        None,
        created_at=now,
        expires_at=now + timedelta(seconds=_TTL[purpose]),
    )
    return link_for(ctx.public_url, "/reset/", token)


async def plan_emails(ctx: InboxContext, jobs: Sequence[OutboxJob]) -> Plan:
    """One email with a fresh link per person; of several requests waiting for one person only the newest
    is sent (its link is the only one that would work anyway)."""
    plan = Plan()
    newest = newest_per_recipient(plan, jobs, "no active team member has that address")
    if not newest:
        return plan
    people = {p.id: p for p in await people_store.get_team_members(newest)}
    practices = await practices_store.get_practices([p.practice_id for p in people.values()])
    for person_id, job in newest.items():
        person = people.get(person_id)
        if person is None or not person.active:
            plan.decisions[job.id] = Skip("the team member is gone or deactivated (R26)")
            continue
        purpose = INVITE if job.payload.get("purpose") == INVITE else RESET
        plan.emails.append(
            PlannedEmail(
                template=TEMPLATES[purpose],
                to=person.email,
                practice_name=practices[person.practice_id].name,
                link=await issue_link(ctx, person, purpose),
                expires_text=_ttl_text(_TTL[purpose]),
                jobs=[job],
            )
        )
    return plan


def _ttl_text(seconds: int) -> str:
    """`notify.duration_text`, in days past one day ("7 days", not "168 hours")."""
    if seconds > 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    return duration_text(seconds)


# --- using a link -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasswordLink:
    link: LinkToken
    member: Participant

    @property
    def is_invitation(self) -> bool:
        return self.link.purpose == INVITE


async def resolve(ctx: InboxContext, token: str) -> PasswordLink | None:
    """The working link for `token`, or None for every kind of failure alike (unknown, tampered, expired,
    used, revoked — by a newer link, a password change or a deactivation — or meant for something else)."""
    if not _TOKEN_SHAPE.match(token or ""):
        return None
    link = await link_store.get_link(hash_token(token, ctx.secret))
    if (
        link is None
        or link.purpose not in (RESET, INVITE)
        or link.used_at is not None
        or link.revoked_at is not None
        or link.expires_at <= ctx.clock.now()
    ):
        return None
    member = await people_store.get_active_team_member(link.participant_id)
    return PasswordLink(link, member) if member is not None else None


async def set_with_link(
    ctx: InboxContext, found: PasswordLink, new: str, *, then: Ended | None = None
) -> bool:
    """Use the link up and set the password, exactly once (of two concurrent posts, one wins). A reset
    proves the person holds the mailbox: it also clears a lockout. Every session, token, other link and
    trusted device of the person ends."""
    check_new_password(new)
    member = found.member
    pw_hash = await hash_password(new)
    now = ctx.clock.now()
    async with db.transaction():
        if not await link_store.set_link_used(found.link.id, now):  # another request used it first
            return False
        member.password_hash = pw_hash
        member.failed_logins = 0
        member.locked_until = None
        await people_store.set_password_hash_and_unlock(member)
        ended = await end_access(ctx, member)
        if then is not None:
            await then(ended)
    return True
