"""Who a "Sign in with Google" signs in (R4, R10, R18), and the sign-ins under way.

An attempt starts in one browser: a random `state` goes to the provider and comes back on the callback,
and the browser carries a random value in an HttpOnly cookie. Only keyed hashes of both are stored, the
nonce and the PKCE verifier are derived from the state with the server's secret, and an attempt is taken
once, within ten minutes, by the browser that started it. So a callback URL replayed, or opened in another
browser (a forged sign-in: "login CSRF"), does nothing.

Matching, for a verified ID token:
- a person who linked this provider account from the portal is matched on (issuer, subject) first, so a
  changed email address at Google still works, and that link alone decides: nobody else is then matched
  by email;
- otherwise the token's email, when the provider says it is verified, matches clients and contacts with
  that address, except anyone who linked another account at this provider (an email match alone is not
  enough against a link).
Either way only people who may use the portal (`links.may_use_portal`: R4, R10) are signed in; the others
are "refused", each with a reason for the audit log, and see the same page as an unknown address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import timedelta

from inbox.context import InboxContext
from inbox.links import PORTAL_KINDS, may_use_portal, normalise_email
from inbox.models import OidcAttempt, OidcIdentity, Participant
from inbox.store import oidc as oidc_store
from inbox.store import people as people_store
from inbox.store import portal as portal_store
from portal_links import new_token

SIGNIN, LINK = "signin", "link"
ATTEMPT_TTL_S = 600
_KEEP_OLD_ATTEMPTS_S = 3600  # then they are deleted, by the next attempt to start
_VALUE_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")

# Why a person was not signed in (audit detail "reason").
EMAIL_UNVERIFIED = "email_unverified"
NO_PORTAL_ACCESS = "no_portal_access"
OTHER_ACCOUNT = "linked_to_another_account"


def _keyed(ctx: InboxContext, label: str, value: str) -> str:
    return hmac.new(ctx.secret, f"oidc-{label}:{value}".encode(), hashlib.sha256).hexdigest()


def derived(ctx: InboxContext, state: str, what: str) -> str:
    """The attempt's nonce or PKCE verifier (43 characters of base64url, as RFC 7636 asks)."""
    raw = hmac.new(ctx.secret, f"oidc-{what}:{state}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def well_formed(value: str | None) -> bool:
    return bool(value) and bool(_VALUE_SHAPE.match(value or ""))


# --- attempts ------------------------------------------------------------------------------------------


async def begin(ctx: InboxContext, browser: str, purpose: str, participant_id: int | None = None) -> str:
    """A new attempt for this browser; its `state`."""
    now = ctx.clock.now()
    await oidc_store.delete_attempts_expired_before(now - timedelta(seconds=_KEEP_OLD_ATTEMPTS_S))
    state = new_token(32)
    await oidc_store.add_attempt(
        state_hash=_keyed(ctx, "state", state),
        browser_hash=_keyed(ctx, "browser", browser),
        purpose=purpose,
        participant_id=participant_id,
        created_at=now,
        expires_at=now + timedelta(seconds=ATTEMPT_TTL_S),
    )
    return state


async def _find(ctx: InboxContext, state: str | None, browser: str | None) -> OidcAttempt | None:
    if not well_formed(state) or not well_formed(browser):
        return None
    assert state is not None and browser is not None
    attempt = await oidc_store.get_attempt(_keyed(ctx, "state", state))
    if attempt is None or attempt.expires_at <= ctx.clock.now():
        return None
    if not hmac.compare_digest(attempt.browser_hash, _keyed(ctx, "browser", browser)):
        return None  # another browser's attempt: a forged callback
    return attempt


async def take(ctx: InboxContext, state: str | None, browser: str | None) -> OidcAttempt | None:
    """The attempt for this callback, used up now (of two concurrent callbacks, one wins); None for an
    unknown, used, expired or other browser's state."""
    attempt = await _find(ctx, state, browser)
    if attempt is None:
        return None
    return attempt if await oidc_store.set_attempt_used(attempt.id, ctx.clock.now()) else None


async def offer_choice(attempt: OidcAttempt, people: list[Participant]) -> None:
    await oidc_store.set_attempt_candidates(attempt, [p.id for p in people])


async def take_choice(
    ctx: InboxContext, state: str | None, browser: str | None, participant_id: int | None
) -> Participant | None:
    """The person chosen on the "which practice?" page, once, from those this attempt matched."""
    attempt = await _find(ctx, state, browser)
    if (
        attempt is None
        or attempt.used_at is None
        or participant_id is None  # (never a candidate: those are ids)
        or participant_id not in (attempt.candidates or [])
    ):
        return None
    if not await oidc_store.set_attempt_chosen(attempt.id, ctx.clock.now()):
        return None
    person = await portal_store.get_person(participant_id)
    return person if person is not None and await may_use_portal(person) else None


# --- matching -------------------------------------------------------------------------------------------


@dataclass
class Match:
    how: str  # subject | email
    people: list[Participant] = field(default_factory=list)
    refused: list[tuple[Participant, str]] = field(default_factory=list)


async def match(issuer: str, subject: str, email: str | None, email_verified: bool) -> Match:
    linked = await oidc_store.get_linked_ids(issuer, subject)
    if linked:
        found = Match("subject")
        for person in await people_store.get_participants(linked):
            if await may_use_portal(person):
                found.people.append(person)
            else:
                found.refused.append((person, NO_PORTAL_ACCESS))
        return found
    found = Match("email")
    address = normalise_email(email or "")[:254]
    if not address:
        return found
    people = await portal_store.get_people_with_email(address, PORTAL_KINDS, by_id=True)
    other = set(await oidc_store.get_ids_linked_at([p.id for p in people], issuer))
    for person in people:
        if not email_verified:
            found.refused.append((person, EMAIL_UNVERIFIED))
        elif person.id in other:
            found.refused.append((person, OTHER_ACCOUNT))
        elif not await may_use_portal(person):
            found.refused.append((person, NO_PORTAL_ACCESS))
        else:
            found.people.append(person)
    return found


async def claimed_by(issuer: str, subject: object, email: object) -> list[Participant]:
    """The portal users a token (trusted or not) names, by its subject or its email: whose audit chains
    record that it was refused."""
    ids: set[int] = set()
    if isinstance(subject, str) and subject:
        ids.update(await oidc_store.get_linked_ids(issuer, subject[:255]))
    if isinstance(email, str) and email.strip():
        address = normalise_email(email)[:254]
        ids.update(await portal_store.get_ids_with_email(address, PORTAL_KINDS))
    return await people_store.get_participants(sorted(ids)) if ids else []


# --- linking --------------------------------------------------------------------------------------------


async def linked(person: Participant, issuer: str) -> OidcIdentity | None:
    return await oidc_store.get_identity(person.id, issuer)


async def link(ctx: InboxContext, person: Participant, issuer: str, subject: str) -> None:
    """Link (or re-link to another account at the same provider)."""
    await oidc_store.set_identity(person.id, issuer, subject, ctx.clock.now())


async def unlink(person: Participant, issuer: str) -> bool:
    return await oidc_store.delete_identity(person.id, issuer)
