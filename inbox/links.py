"""The links in emails: notification links (R16–R18) and Instant Sign In links (R18), and asking for one.

- `notify` links go into the emails about a new or unread message. Each is bound to one client or contact
  and one conversation, and works for `ctx.link_ttl_s` (24 h) from when the email was made, on any number
  of devices ("open the email from either their desktop or mobile device"): in a browser, or exchanged for
  an app token (`POST /auth/magic`). Nothing uses it up; each use starts its own session, which ends when
  the link does (`session_ttl_for`), and is audited by its caller. It stops working when it expires (its
  sessions with it), or when its holder may no longer use the portal (R4, `may_use_portal`): turning a
  client's messaging or portal access off revokes their links and sessions together.
- `signin` links answer a request on `/portal/sign-in`. One works once, for `ctx.signin_link_ttl_s`
  (15 min), and only the newest one of a person works: issuing a link revokes that person's older ones.
  Opening it (GET) only looks at it (`resolve`); using it up is a separate, atomic step (`use_up`), taken by
  the "Sign in" button's POST, so a mail scanner that fetches every link in an email cannot burn it.

Tokens are random and only their keyed hash is stored (`portal_links.hash_token`). `resolve` answers None for
every link that does not work — unknown, tampered, expired, used up, revoked, meant for another purpose, or
held by someone who may no longer use the portal (R4) — and callers show the same page for all of them, so
nothing tells whose link it was or why it failed. Turning a client's messaging or portal access off revokes
the links of the client and its contacts at once (`inbox.accounts.update_client`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from inbox import outbox
from inbox.accounts import issue_token, takes_part
from inbox.context import InboxContext
from inbox.models import CLIENT, CONTACT, AuthToken, LinkToken, Participant
from inbox.store import links as link_store
from inbox.store import outbox as outbox_store
from inbox.store import portal as portal_store
from portal_links import hash_token, link_for, new_token

NOTIFY = "notify"
SIGNIN = "signin"
PURPOSES = (NOTIFY, SIGNIN)
PORTAL_KINDS = (CLIENT, CONTACT)

_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,200}$")


@dataclass(frozen=True)
class Resolved:
    link: LinkToken
    participant: Participant


# --- who may use the portal --------------------------------------------------------------------------


async def may_use_portal(person: Participant) -> bool:
    """R4 (and R10 for contacts): a client's messaging is on and they have portal access; a contact also
    needs their client's. Team members never sign in through the portal."""
    if person.kind not in PORTAL_KINDS:
        return False
    client = None
    if person.kind == CONTACT and person.messaging_enabled and person.portal_access:
        client = await portal_store.get_person(person.client_id or 0, practice_id=person.practice_id)
    # The same conditions as the websocket's re-check (R27), from one definition.
    return takes_part(person, client)


# --- issuing -----------------------------------------------------------------------------------------


async def _issue(
    ctx: InboxContext, person: Participant, purpose: str, ttl_s: int, conversation_id: int | None = None
) -> str:
    token = new_token()
    now = ctx.clock.now()
    await link_store.add_link(
        token_hash=hash_token(token, ctx.secret),
        purpose=purpose,
        participant_id=person.id,
        conversation_id=conversation_id,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    return token


async def issue_notify_link(ctx: InboxContext, person: Participant, conversation_id: int | None) -> str:
    """The absolute URL for a notification email: `/portal/m/{token}`, working for 24 hours."""
    token = await _issue(ctx, person, NOTIFY, ctx.link_ttl_s, conversation_id)
    return link_for(ctx.public_url, "/portal/m/", token)


async def issue_signin_link(ctx: InboxContext, person: Participant) -> str:
    """The absolute URL for an Instant Sign In email: `/portal/s/{token}`. Only the newest one works."""
    await link_store.set_live_links_revoked(person.id, [SIGNIN], ctx.clock.now())
    token = await _issue(ctx, person, SIGNIN, ctx.signin_link_ttl_s)
    return link_for(ctx.public_url, "/portal/s/", token)


# --- resolving and using -----------------------------------------------------------------------------


async def resolve(ctx: InboxContext, token: str, purposes: tuple[str, ...] = PURPOSES) -> Resolved | None:
    """The working link for `token`, or None (for every kind of failure alike)."""
    if not _TOKEN_SHAPE.match(token or ""):
        return None
    link = await link_store.get_link(hash_token(token, ctx.secret))
    if (
        link is None
        or link.purpose not in purposes
        or link.used_at is not None
        or link.revoked_at is not None
        or link.expires_at <= ctx.clock.now()
    ):
        return None
    person = await portal_store.get_person(link.participant_id)
    if person is None or not await may_use_portal(person):
        return None
    return Resolved(link, person)


async def use(ctx: InboxContext, link: LinkToken) -> bool:
    """One use of a link that `resolve` found working. A notification link serves any number of devices
    until it ends, so nothing is marked; any other link is used up, once (`use_up`)."""
    if link.purpose == NOTIFY:
        return True
    return await use_up(ctx, link)


async def use_up(ctx: InboxContext, link: LinkToken) -> bool:
    """Mark the link used, exactly once: of two concurrent presses of "Sign in", one wins."""
    return await link_store.set_link_used(link.id, ctx.clock.now())


def session_ttl_for(ctx: InboxContext, link: LinkToken) -> int:
    """A session opened by a notification link ends when the link does, to the second (R18: 24 hours
    without signing in, not 24 hours plus a session, nor a shorter session that sends someone with the
    page open to sign in while their link still works); an Instant Sign In starts a full session."""
    if link.purpose != NOTIFY:
        return ctx.session_ttl_s
    left = (link.expires_at - ctx.clock.now()).total_seconds()
    return max(1, int(left))


async def open_session(ctx: InboxContext, resolved: Resolved, kind: str) -> tuple[str, AuthToken]:
    """A portal session ("session", with a CSRF token) or an app token ("app") for the link's holder."""
    return await issue_token(
        ctx,
        resolved.participant,
        kind,
        session_ttl_for(ctx, resolved.link),
        csrf=kind == "session",
    )


async def revoke_links(ctx: InboxContext, participant_ids: list[int]) -> int:
    """Every live link of these people stops working now (R4; `accounts.update_client` does the same, with
    their sessions, when a client's messaging or portal access is turned off)."""
    return await link_store.set_links_revoked(participant_ids, ctx.clock.now())


# --- asking for an Instant Sign In link -------------------------------------------------------------


def normalise_email(raw: str) -> str:
    return raw.strip().lower()


async def request_signin(ctx: InboxContext, email: str) -> None:
    """Queue an Instant Sign In email for every portal user with this address (one address may be a client
    at two practices, or a client and a contact). The work is the same whether or not anyone matches —
    one indexed lookup and one insert — so the answer's timing does not tell whether the address is known;
    a request that matched nobody is a row the dispatcher skips. The link itself is made when the email is
    sent, so no usable token is ever stored."""
    address = normalise_email(email)[:254]
    people = [
        p
        for p in await portal_store.get_people_with_email(address, PORTAL_KINDS)
        if p.messaging_enabled and p.portal_access
    ]
    now = ctx.clock.now()
    rows: list[dict[str, Any]] = [
        {
            "kind": outbox.SIGNIN_EMAIL,
            "due_at": now,
            "created_at": now,
            "practice_id": p.practice_id,
            "recipient_id": p.id,
        }
        for p in people
    ] or [{"kind": outbox.SIGNIN_EMAIL, "due_at": now, "created_at": now}]
    await outbox_store.add_rows(rows)
