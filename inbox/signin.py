"""Signing in to the web inbox: password, then the TOTP code when enrolled; sessions; TOTP enrolment.

Two short-lived values travel through the browser between steps, each signed with the server secret so
that nothing needs a new table:

- After a correct password for someone with TOTP on, a *pending sign-in* ticket (member id, expiry) waits
  for the code. It proves the password was right, nothing more: it is not a token and opens nothing.
  Wrong codes count towards the same lockout as wrong passwords (`accounts.verify_otp`), so replaying
  the ticket cannot be used to guess codes.
- TOTP enrolment from the page keeps the new secret *pending* until a first code from the authenticator
  verifies: the secret, bound to the member and the session, goes back with the confirmation form. The
  page shows that secret anyway (as the QR code and as text), so sending it back adds no exposure. The
  API's `POST /team-members/{id}/totp` turns TOTP on at once. Both ask for the password first, and for the
  current code when a factor is already on (R30: a session or token alone does not replace the factor).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pyotp

from inbox import accounts, db
from inbox.context import InboxContext
from inbox.errors import Invalid
from inbox.models import Participant
from inbox.store import people, practices, tokens
from portal_links import hash_token, new_token

PENDING_SIGNIN_TTL_S = 5 * 60
PENDING_TOTP_TTL_S = 15 * 60


def _mac(secret: bytes, *parts: object) -> str:
    msg = "|".join(str(p) for p in parts).encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def _now_s(ctx: InboxContext) -> int:
    return int(ctx.clock.now().timestamp())


# --- the password step and the code step -----------------------------------------------------------


@dataclass
class PasswordStep:
    member: Participant
    needs_code: bool


async def check_password(
    ctx: InboxContext,
    email: str,
    password: str,
    *,
    trusted_member_id: int | None = None,
    practice_id: int | None = None,
) -> PasswordStep:
    """The first step. Raises `Unauthenticated` (invalid_credentials) like the API, and `Conflict`
    (practice_required) when the password opens accounts at several practices.
    `trusted_member_id`: the account the browser's device token marks as trusted (see
    accounts.authenticate)."""
    try:
        member = await accounts.authenticate(
            ctx, email, password, None, trusted_member_id=trusted_member_id, practice_id=practice_id
        )
    except accounts.OtpRequired as exc:
        return PasswordStep(exc.member, needs_code=True)
    return PasswordStep(member, needs_code=False)


def pending_signin_ticket(ctx: InboxContext, member: Participant) -> str:
    expires = _now_s(ctx) + PENDING_SIGNIN_TTL_S
    return f"{member.id}.{expires}.{_mac(ctx.secret, 'signin-code', member.id, expires)}"


def read_pending_signin(ctx: InboxContext, ticket: str | None) -> int | None:
    """The member id of a valid, unexpired ticket, else None."""
    if not ticket or len(ticket) > 200:
        return None
    member_id, _, rest = ticket.partition(".")
    expires, _, mac = rest.partition(".")
    if not (member_id.isdigit() and expires.isdigit()):
        return None
    if not hmac.compare_digest(mac, _mac(ctx.secret, "signin-code", member_id, expires)):
        return None
    if int(expires) <= _now_s(ctx):
        return None
    return int(member_id)


async def pending_member(member_id: int) -> Participant | None:
    return await people.get_active_team_member(member_id)


async def check_code(
    ctx: InboxContext, member: Participant, code: str, *, trusted_device: bool = False
) -> Participant:
    """The second step: the authenticator's code for the member named by a pending ticket."""
    await accounts.verify_otp(ctx, member, code.replace(" ", "").strip(), trusted_device=trusted_device)
    return member


# --- sessions ----------------------------------------------------------------------------------------


async def start_session(ctx: InboxContext, member: Participant, previous: str | None) -> str:
    """A fresh session token with its CSRF token; the session the browser held before (if any) ends, so a
    session id planted before sign-in never becomes a signed-in one."""
    if previous:
        await end_session(ctx, previous)
    token, _ = await accounts.issue_token(ctx, member, "session", csrf=True)
    return token


async def end_session(ctx: InboxContext, token: str) -> None:
    if not token or len(token) > 200:
        return
    await tokens.revoke_session(hash_token(token, ctx.secret), ctx.clock.now())


# --- TOTP enrolment from the page -----------------------------------------------------------------


@dataclass
class Enrolment:
    secret: str
    uri: str
    expires: int
    signature: str

    @property
    def grouped_secret(self) -> str:
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))


async def _issuer(member: Participant) -> str:
    practice = await practices.get_practice(member.practice_id)
    return f"securemsg ({practice.name})"


async def new_enrolment(ctx: InboxContext, member: Participant, session_id: int) -> Enrolment:
    return await _enrolment(ctx, member, session_id, pyotp.random_base32(), _now_s(ctx) + PENDING_TOTP_TTL_S)


async def _enrolment(
    ctx: InboxContext, member: Participant, session_id: int, secret: str, expires: int
) -> Enrolment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=member.email, issuer_name=await _issuer(member))
    sig = _mac(ctx.secret, "totp-enrol", member.id, session_id, secret, expires)
    return Enrolment(secret, uri, expires, sig)


async def pending_enrolment(
    ctx: InboxContext, member: Participant, session_id: int, secret: str, expires: str, signature: str
) -> Enrolment:
    """The enrolment a confirmation form carries back, checked: issued by us, to this member and session,
    not expired."""
    if not expires.isdigit() or len(secret) > 64:
        raise Invalid("enrolment_expired", "The set-up has expired; start again.")
    expected = _mac(ctx.secret, "totp-enrol", member.id, session_id, secret, expires)
    if not hmac.compare_digest(signature, expected) or int(expires) <= _now_s(ctx):
        raise Invalid("enrolment_expired", "The set-up has expired; start again.")
    return await _enrolment(ctx, member, session_id, secret, int(expires))


async def confirm_enrolment(
    ctx: InboxContext,
    member: Participant,
    enrolment: Enrolment,
    code: str,
    *,
    password: str,
    current_code: str | None,
    then: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Turn TOTP on with the pending secret once a code from it verifies and the password (and, when
    replacing a factor, the current code) is right (R30); until then nothing changes. The new code is checked
    first, so a typo there does not use up the current code. `then`: the caller's audit row, written in the
    transaction that turns the factor on (after the slow password check)."""
    code = code.replace(" ", "").strip()
    if not (code.isdigit() and len(code) == 6):
        raise Invalid("invalid_otp", "Enter the 6-digit code from your authenticator app.", field="code")
    step = accounts.totp_step(ctx, member, code, pending=enrolment.secret)
    if step is None:
        raise Invalid("invalid_otp", "That code is not right. Check the app and try again.", field="code")
    await accounts.reconfirm(ctx, member, password, current_code)
    async with db.transaction():
        # The confirming code is used: it cannot also sign in.
        await accounts.set_totp_secret(ctx, member, enrolment.secret, last_step=step)
        if then is not None:
            await then()


def new_form_nonce() -> str:
    """The random value behind the sign-in form's CSRF check (before there is a session)."""
    return new_token(24)
