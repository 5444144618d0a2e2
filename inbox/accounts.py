"""Practices, team members, clients, contacts, access grants, sign-in and bearer tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.transactions import in_transaction

from inbox import rawsql
from inbox.context import InboxContext
from inbox.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from inbox.ids import is_id
from inbox.models import (
    CLIENT,
    CONTACT,
    ROLES,
    TEAM,
    AuthToken,
    ClientAccess,
    Device,
    LinkToken,
    Participant,
    Practice,
)
from portal_links import hash_token, new_token

_hasher = PasswordHasher()
# A real hash to verify against when the address is unknown, so a wrong address costs as long as a wrong
# password and sign-in timing does not reveal which addresses exist.
_DUMMY_HASH = _hasher.hash("not a real password")

API_KEY_PREFIX = "smk_"
LOCKOUT_AFTER = 10
LOCKOUT_S = 15 * 60


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


# --- practices ---------------------------------------------------------------------------------------


@dataclass
class NewPractice:
    practice: Practice
    owner: Participant
    api_key: str


async def create_practice(
    ctx: InboxContext, *, name: str, owner_name: str, owner_email: str, owner_password: str
) -> NewPractice:
    _check_name(name, "name")
    _check_name(owner_name, "owner_name")
    email = _check_email(owner_email)
    _check_password(owner_password)
    pw_hash = await hash_password(owner_password)
    now = ctx.clock.now()
    async with in_transaction():
        if await Participant.filter(kind=TEAM, email=email).exists():
            raise Conflict("email_taken", "A team member with this email already exists.")
        practice = await Practice.create(name=name.strip(), created_at=now)
        owner = await Participant.create(
            practice=practice,
            kind=TEAM,
            name=owner_name.strip(),
            email=email,
            roles="account_owner,clinician",
            messaging_enabled=True,
            can_export=True,
            password_hash=pw_hash,
            created_at=now,
        )
        api_key = API_KEY_PREFIX + new_token()
        await AuthToken.create(
            token_hash=hash_token(api_key, ctx.secret), kind="api_key", practice=practice, created_at=now
        )
    return NewPractice(practice, owner, api_key)


async def new_api_key(ctx: InboxContext, practice_id: int) -> str:
    api_key = API_KEY_PREFIX + new_token()
    await AuthToken.create(
        token_hash=hash_token(api_key, ctx.secret),
        kind="api_key",
        practice_id=practice_id,
        created_at=ctx.clock.now(),
    )
    return api_key


def settings_json(practice: Practice, ctx: InboxContext) -> dict[str, Any]:
    return {
        "name": practice.name,
        "client_messaging_enabled": practice.client_messaging_enabled,
        "team_messaging_enabled": practice.team_messaging_enabled,
        "auto_enable_new_clients": practice.auto_enable_new_clients,
        "unread_email_delay_s": practice.unread_email_delay_s or ctx.default_unread_delay_s,
        "allow_unencrypted_exports": practice.allow_unencrypted_exports,
    }


async def update_settings(
    ctx: InboxContext, practice: Practice, changes: dict[str, Any], *, testing: bool = False
) -> Practice:
    team_on = changes.get("team_messaging_enabled", practice.team_messaging_enabled)
    client_on = changes.get("client_messaging_enabled", practice.client_messaging_enabled)
    if client_on and not team_on and changes.get("client_messaging_enabled"):
        raise Conflict(
            "team_messaging_off",
            "Turn on secure messaging for the team before turning it on for clients.",
            rule="R1",
        )
    if not team_on:
        client_on = False  # R1: client messaging cannot stay on while the team's is off.
    if "unread_email_delay_s" in changes:
        delay = changes["unread_email_delay_s"]
        lo = 1 if testing else 600
        if not lo <= delay <= 1200:
            raise Invalid(
                "invalid_unread_email_delay",
                "unread_email_delay_s must be between 600 and 1200 seconds.",
                field="unread_email_delay_s",
            )
        practice.unread_email_delay_s = delay
    if "name" in changes:
        practice.name = _check_name(changes["name"], "name")
    practice.team_messaging_enabled = team_on
    practice.client_messaging_enabled = client_on
    if "auto_enable_new_clients" in changes:
        practice.auto_enable_new_clients = changes["auto_enable_new_clients"]
    if "allow_unencrypted_exports" in changes:  # R23: exports without a password, off by default
        practice.allow_unencrypted_exports = changes["allow_unencrypted_exports"]
    await practice.save()
    return practice


# --- people ------------------------------------------------------------------------------------------


def _check_name(value: str, field: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 200:
        raise Invalid("invalid_name", f"{field} must be 1 to 200 characters.", field=field)
    return value


def _check_email(value: str, field: str = "email") -> str:
    value = value.strip().lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or len(value) > 254 or any(c.isspace() for c in value):
        raise Invalid("invalid_email", f"{field} is not an email address.", field=field)
    return value


def _check_password(value: str) -> None:
    if not 10 <= len(value) <= 256:
        raise Invalid("weak_password", "A password must be 10 to 256 characters.", field="password")


def _check_roles(roles: list[str]) -> str:
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise Invalid(
            "invalid_roles", f"roles must be a non-empty list from: {', '.join(ROLES)}.", field="roles"
        )
    return ",".join(dict.fromkeys(roles))


async def get_participant(practice_id: int, participant_id: int, *, kind: str | None = None) -> Participant:
    found = None
    if is_id(participant_id):
        query = Participant.filter(id=participant_id, practice_id=practice_id)
        if kind:
            query = query.filter(kind=kind)
        found = await query.first()
    if found is None:
        raise NotFound(
            {TEAM: "team member", CLIENT: "client", CONTACT: "contact"}.get(kind or "", "participant")
        )
    return found


async def create_team_member(
    ctx: InboxContext,
    practice_id: int,
    *,
    name: str,
    email: str,
    roles: list[str],
    password: str | None = None,
    can_export: bool = False,
    messaging_enabled: bool = True,
) -> Participant:
    role_str = _check_roles(roles)
    email = _check_email(email)
    if password is not None:
        _check_password(password)
    pw_hash = await hash_password(password) if password else None
    if await Participant.filter(kind=TEAM, email=email).exists():
        raise Conflict("email_taken", "A team member with this email already exists.")
    return await Participant.create(
        practice_id=practice_id,
        kind=TEAM,
        name=_check_name(name, "name"),
        email=email,
        roles=role_str,
        messaging_enabled=messaging_enabled,
        can_export=can_export and bool({"practice_manager", "account_owner"} & set(roles)),
        password_hash=pw_hash,
        created_at=ctx.clock.now(),
    )


async def update_team_member(ctx: InboxContext, member: Participant, changes: dict[str, Any]) -> Participant:
    if "roles" in changes:
        member.roles = _check_roles(changes["roles"])
    if "messaging_enabled" in changes:
        member.messaging_enabled = changes["messaging_enabled"]
    if "can_export" in changes:
        member.can_export = changes["can_export"]
    if "name" in changes:
        member.name = _check_name(changes["name"], "name")
    if "password" in changes:
        _check_password(changes["password"])
        member.password_hash = await hash_password(changes["password"])
    if member.can_export and not ({"practice_manager", "account_owner"} & member.role_set):
        raise Invalid(
            "can_export_needs_manager",
            "Only an account owner or practice manager can export data.",
            field="can_export",
        )
    await member.save()
    return member


async def create_client(
    ctx: InboxContext,
    practice: Practice,
    *,
    name: str,
    email: str,
    primary_clinician_id: int | None,
    portal_access: bool = True,
    messaging_enabled: bool | None = None,
) -> Participant:
    clinician = None
    if primary_clinician_id is not None:
        clinician = await _primary_clinician(practice.id, primary_clinician_id)
    return await Participant.create(
        practice_id=practice.id,
        kind=CLIENT,
        name=_check_name(name, "name"),
        email=_check_email(email),
        primary_clinician=clinician,
        portal_access=portal_access,
        # R2: a new client starts as the practice's "automatically allow" setting says.
        messaging_enabled=practice.auto_enable_new_clients
        if messaging_enabled is None
        else messaging_enabled,
        created_at=ctx.clock.now(),
    )


async def _primary_clinician(practice_id: int, member_id: int) -> Participant:
    try:
        clinician = await get_participant(practice_id, member_id, kind=TEAM)
    except NotFound:
        raise Invalid(
            "unknown_clinician",
            "primary_clinician_id is not a team member of this practice.",
            field="primary_clinician_id",
        ) from None
    if "clinician" not in clinician.role_set:
        raise Invalid(
            "not_a_clinician",
            "The primary clinician must have the clinician role.",
            field="primary_clinician_id",
        )
    return clinician


async def update_client(ctx: InboxContext, client: Participant, changes: dict[str, Any]) -> Participant:
    if "primary_clinician_id" in changes:
        pcid = changes["primary_clinician_id"]
        client.primary_clinician = (
            await _primary_clinician(client.practice_id, pcid) if pcid is not None else None
        )
    if "name" in changes:
        client.name = _check_name(changes["name"], "name")
    if "email" in changes:
        client.email = _check_email(changes["email"])
    turned_off = False
    for flag in ("messaging_enabled", "portal_access"):
        if flag in changes:
            turned_off |= getattr(client, flag) and not changes[flag]
            setattr(client, flag, changes[flag])
    async with in_transaction():
        await client.save()
        if turned_off:
            # R4: nothing keeps working after "off": the links and sessions of the client and its
            # contacts end now.
            await revoke_everything_for_client(ctx, client)
    return client


async def revoke_everything_for_client(ctx: InboxContext, client: Participant) -> None:
    ids = [
        client.id,
        *await Participant.filter(client_id=client.id, kind=CONTACT).values_list("id", flat=True),
    ]
    now = ctx.clock.now()
    await LinkToken.filter(participant_id__in=ids, revoked_at=None).update(revoked_at=now)
    await AuthToken.filter(participant_id__in=ids, revoked_at=None).update(revoked_at=now)


async def add_contact(ctx: InboxContext, client: Participant, *, name: str, email: str) -> Participant:
    return await Participant.create(
        practice_id=client.practice_id,
        kind=CONTACT,
        name=_check_name(name, "name"),
        email=_check_email(email),
        client=client,
        portal_access=True,
        messaging_enabled=True,
        created_at=ctx.clock.now(),
    )


async def grant_access(ctx: InboxContext, client: Participant, member: Participant) -> bool:
    _, created = await ClientAccess.get_or_create(
        client_id=client.id, team_member_id=member.id, defaults={"created_at": ctx.clock.now()}
    )
    return created


async def withdraw_access(client: Participant, member: Participant) -> bool:
    return bool(await ClientAccess.filter(client_id=client.id, team_member_id=member.id).delete())


async def access_list(client: Participant) -> list[int]:
    """The team members granted access to this client's profile (the primary clinician has it anyway)."""
    rows: list[Any] = (
        await ClientAccess.filter(client_id=client.id)
        .order_by("team_member_id")
        .values_list("team_member_id", flat=True)
    )
    return [int(r) for r in rows]


# --- sign-in and tokens ------------------------------------------------------------------------------


@dataclass
class Principal:
    """Who is calling: a participant's token, or the practice's API key (participant None)."""

    practice_id: int
    kind: str  # session | app | api_key
    token_id: int
    participant: Participant | None
    csrf_token: str | None = None

    @property
    def is_api_key(self) -> bool:
        return self.kind == "api_key"


async def issue_token(
    ctx: InboxContext, participant: Participant, kind: str, ttl_s: int | None = None, *, csrf: bool = False
) -> tuple[str, AuthToken]:
    token = new_token()
    now = ctx.clock.now()
    row = await AuthToken.create(
        token_hash=hash_token(token, ctx.secret),
        kind=kind,
        practice_id=participant.practice_id,
        participant=participant,
        csrf_token=new_token(24) if csrf else None,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s or ctx.session_ttl_s),
    )
    return token, row


# The token's columns, as `t_…`, for a query on `auth_token t` (here, and `inbox.sending`, which asks for
# the caller and the conversation together).
CALLER_COLUMNS = (
    "t.id AS t_id, t.kind AS t_kind, t.practice_id AS t_practice_id, t.participant_id AS t_participant_id, "
    "t.csrf_token AS t_csrf_token, t.expires_at AS t_expires_at"
)
MAX_TOKEN_CHARS = 200


def presented_token_hash(ctx: InboxContext, token: str) -> str | None:
    """What a bearer token or session cookie is looked up by, or None for one that cannot be ours."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return hash_token(token, ctx.secret)


@cache
def _token_sql() -> str:
    # Every request asks this: one prepared query (see inbox.rawsql) instead of two built by the ORM.
    return (
        f"SELECT {CALLER_COLUMNS}, {rawsql.columns(Participant, 'p')} FROM auth_token t "  # noqa: S608
        "LEFT JOIN participant p ON p.id = t.participant_id WHERE t.token_hash = ? AND t.revoked_at IS NULL"
    )


async def resolve_token(ctx: InboxContext, token: str) -> Principal | None:
    token_hash = presented_token_hash(ctx, token)
    if token_hash is None:
        return None
    rows = await rawsql.fetch(_token_sql(), (token_hash,))
    return principal_from_row(rows[0], ctx.clock.now()) if rows else None


def principal_from_row(
    row: Mapping[str, Any], now: datetime, participant_prefix: str = ""
) -> Principal | None:
    """The caller from a row of `CALLER_COLUMNS` and the token's participant's columns (under
    `participant_prefix`); None when the token has expired or its participant is gone."""
    expires_at = rawsql.to_datetime(row["t_expires_at"])
    if expires_at is not None and expires_at <= now:
        return None
    participant = None
    if row["t_participant_id"] is not None:
        columns = rawsql.unprefixed(row, participant_prefix) if participant_prefix else row
        if columns.get("id") is None:
            return None
        participant = rawsql.model_from_row(Participant, columns)
    return Principal(row["t_practice_id"], row["t_kind"], row["t_id"], participant, row["t_csrf_token"])


async def revoke_token(ctx: InboxContext, principal: Principal) -> None:
    """Sign out: the token stops working and the devices this session registered stop getting pushes."""
    await AuthToken.filter(id=principal.token_id).update(revoked_at=ctx.clock.now())
    await Device.filter(auth_token_id=principal.token_id).delete()


async def authenticate(
    ctx: InboxContext, email: str, password: str, otp: str | None, *, trusted_device: bool = False
) -> Participant:
    """Team sign-in: password (argon2), then the TOTP code when enrolled.

    Ten failures (wrong passwords or wrong codes) lock the account for 15 minutes; during the lockout even
    the right password is refused, failures do not extend it, and then it opens again by itself.

    An attacker could still keep a person locked out for good by sending ten wrong passwords every 15
    minutes. So a sign-in from a trusted device — one that signed in to this account before and shows the
    device token it was given (`device_token_for`, checked by `device_token_valid`) — neither meets the
    account's lockout nor counts towards it; its own failures are throttled per device token by the caller
    (gateway.limits). The person keeps getting in from their own phone or browser while an attacker, who
    has no such token, stays locked out. (The pattern is OWASP's "device cookies".)
    """
    member = await Participant.filter(kind=TEAM, email=email.strip().lower()).first()
    now = ctx.clock.now()
    ok = await verify_password(member.password_hash if member else None, password)
    if member is None:
        raise Unauthenticated("invalid_credentials", "The email or password is not right.")
    if not trusted_device and member.locked_until is not None and member.locked_until > now:
        raise Unauthenticated("account_locked", "Too many failed sign-ins; try again in a few minutes.")
    if not ok:
        if not trusted_device:
            await _count_failure(member, now)
        raise Unauthenticated("invalid_credentials", "The email or password is not right.")
    if member.totp_enabled and member.totp_secret:
        if not otp:
            raise Unauthenticated("otp_required", "Enter the code from your authenticator app.")
        await verify_otp(ctx, member, otp, trusted_device=trusted_device)
    elif not trusted_device:
        await _clear_failures(member)
    return member


async def verify_otp(
    ctx: InboxContext, member: Participant, code: str, *, trusted_device: bool = False
) -> None:
    """The second factor (API sign-in and the web page's code step). A wrong code counts towards the same
    lockout as a wrong password: with the password known, the six digits are all that is left to guess."""
    now = ctx.clock.now()
    if not trusted_device and member.locked_until is not None and member.locked_until > now:
        raise Unauthenticated("account_locked", "Too many failed sign-ins; try again in a few minutes.")
    if not totp_matches(member, code, ctx):
        if not trusted_device:
            await _count_failure(member, now)
        raise Unauthenticated("invalid_otp", "That code is not right.")
    if not trusted_device:
        # A trusted device's success does not clear the count: someone else may be guessing meanwhile.
        await _clear_failures(member)


async def _count_failure(member: Participant, now: datetime) -> None:
    member.failed_logins += 1
    if member.failed_logins >= LOCKOUT_AFTER:
        member.locked_until = now + timedelta(seconds=LOCKOUT_S)
        member.failed_logins = 0
    await member.save(update_fields=["failed_logins", "locked_until"])


async def _clear_failures(member: Participant) -> None:
    if member.failed_logins or member.locked_until:
        member.failed_logins = 0
        member.locked_until = None
        await member.save(update_fields=["failed_logins", "locked_until"])


DEVICE_TOKEN_PREFIX = "smd_"  # noqa: S105 - a label, not a secret


def _device_mac(ctx: InboxContext, email: str, nonce: str) -> str:
    message = f"device-trust:{email.strip().lower()}:{nonce}".encode()
    return hmac.new(ctx.secret, message, hashlib.sha256).hexdigest()


def device_token_for(ctx: InboxContext, email: str) -> str:
    """A token that marks the device that just signed in to `email` as trusted for later sign-ins. Nothing is
    stored: it is a random nonce and an HMAC over it and the address with the server secret."""
    nonce = new_token(16)
    return f"{DEVICE_TOKEN_PREFIX}{nonce}.{_device_mac(ctx, email, nonce)}"


def device_token_valid(ctx: InboxContext, email: str, token: str | None) -> bool:
    if not token or len(token) > 200 or not token.startswith(DEVICE_TOKEN_PREFIX):
        return False
    nonce, _, mac = token[len(DEVICE_TOKEN_PREFIX) :].partition(".")
    return bool(nonce and mac) and hmac.compare_digest(mac.encode(), _device_mac(ctx, email, nonce).encode())


async def start_totp_enrolment(member: Participant, issuer: str) -> str:
    """API.md: enrolling turns the second factor on at once; a new enrolment replaces the old secret."""
    member.totp_secret = pyotp.random_base32()
    member.totp_enabled = True
    await member.save(update_fields=["totp_secret", "totp_enabled"])
    return pyotp.TOTP(member.totp_secret).provisioning_uri(name=member.email, issuer_name=issuer)


def totp_matches(member: Participant, code: str, ctx: InboxContext) -> bool:
    if not member.totp_secret:
        return False
    return bool(pyotp.TOTP(member.totp_secret).verify(code, for_time=ctx.clock.now(), valid_window=1))


def is_owner_level(principal: Principal) -> bool:
    """The practice API key, or an account owner's token."""
    member = principal.participant
    return principal.is_api_key or (
        member is not None and member.kind == TEAM and "account_owner" in member.role_set
    )


def check_team_change(
    principal: Principal, target: Participant | None, roles: list[str] | None, sets_can_export: bool
) -> None:
    """Practice managers run the team, but not past their own rights: only the account owner (or the
    practice's API key) changes an account owner's account, makes someone an account owner, or decides who
    may export client data (R23). Otherwise a manager could reset the owner's password, or give themself
    the export and the audit log (R24)."""
    if is_owner_level(principal):
        return
    if target is not None and "account_owner" in target.role_set:
        raise Forbidden("owner_only", "Only the account owner can change an account owner's account.")
    if roles is not None and "account_owner" in roles:
        raise Forbidden("owner_only", "Only the account owner can make someone an account owner.")
    if sets_can_export:
        raise Forbidden(
            "owner_only", "Only the account owner can allow a manager to export client data.", rule="R23"
        )


def require_manager(principal: Principal) -> None:
    """Provisioning: the practice API key, or an account owner's / practice manager's token."""
    if principal.is_api_key:
        return
    member = principal.participant
    if member is None or member.kind != TEAM or not ({"account_owner", "practice_manager"} & member.role_set):
        raise Forbidden("managers_only", "Only the account owner or a practice manager can do this.")
