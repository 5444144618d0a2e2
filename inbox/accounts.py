"""Practices, team members, clients, contacts, access grants, sign-in and bearer tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import unicodedata
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import argon2
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from inbox import apikeys, db, sealed, timezones
from inbox.context import InboxContext
from inbox.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from inbox.ids import is_id
from inbox.models import CLIENT, CONTACT, ROLES, TEAM, AuthToken, Participant, Practice
from inbox.store import access, people, tokens
from inbox.store import practices as practices_store
from portal_links import hash_token, new_token

_hasher = PasswordHasher()  # argon2id with RFC 9106's low-memory profile (64 MiB, 3 passes)
# A real hash to verify against when the address is unknown, so a wrong address costs as long as a wrong
# password and sign-in timing does not reveal which addresses exist.
_DUMMY_HASH = _hasher.hash("not a real password")


def use_password_parameters(parameters: argon2.Parameters) -> None:
    """Hash new passwords with other argon2 parameters (the test suite uses argon2's CHEAPEST profile: each
    default hash costs tens of milliseconds of CPU and 64 MiB, and the suite hashes thousands). Stored hashes
    carry their own parameters, so verifying an existing one is unaffected."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher.from_parameters(parameters)
    _DUMMY_HASH = _hasher.hash("not a real password")


API_KEY_PREFIX = apikeys.API_KEY_PREFIX
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
    check_new_password(owner_password)
    pw_hash = await hash_password(owner_password)
    now = ctx.clock.now()
    # Team addresses are unique per practice, and a new practice has nobody yet: the same address at
    # another practice is neither refused nor revealed.
    async with db.transaction():
        practice = await practices_store.add_practice(name.strip(), now)
        owner = await people.add_team_member(
            practice,
            name=owner_name.strip(),
            email=email,
            roles="account_owner,clinician",
            messaging_enabled=True,
            can_export=True,
            password_hash=pw_hash,
            created_at=now,
        )
        # The key `create-practice` prints can do what every key can (R29).
        _, api_key = await apikeys.issue(ctx, practice.id, "practice key", apikeys.SCOPES)
    return NewPractice(practice, owner, api_key)


async def new_api_key(ctx: InboxContext, practice_id: int) -> str:
    _, api_key = await apikeys.issue(ctx, practice_id, "practice key", apikeys.SCOPES)
    return api_key


# R17: a practice chooses how long a message may stay unread before the email: 10 to 20 minutes.
MIN_UNREAD_DELAY_S, MAX_UNREAD_DELAY_S = 600, 1200


def settings_json(practice: Practice, ctx: InboxContext) -> dict[str, Any]:
    return {
        "name": practice.name,
        "client_messaging_enabled": practice.client_messaging_enabled,
        "team_messaging_enabled": practice.team_messaging_enabled,
        "auto_enable_new_clients": practice.auto_enable_new_clients,
        "unread_email_delay_s": practice.unread_email_delay_s or ctx.default_unread_delay_s,
        "allow_unencrypted_exports": practice.allow_unencrypted_exports,
        "time_zone": timezones.zone_name(practice.time_zone),
        "time_zone_chosen": practice.time_zone is not None,
    }


async def update_settings(
    ctx: InboxContext, practice: Practice, changes: dict[str, Any], *, testing: bool = False
) -> Practice:
    zone = timezones.check_time_zone(changes["time_zone"]) if "time_zone" in changes else None
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
        lo = 1 if testing else MIN_UNREAD_DELAY_S
        if not lo <= delay <= MAX_UNREAD_DELAY_S:
            raise Invalid(
                "invalid_unread_email_delay",
                f"unread_email_delay_s must be between {MIN_UNREAD_DELAY_S} and {MAX_UNREAD_DELAY_S} "
                "seconds.",
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
    if zone is not None:
        practice.time_zone = zone
    await practices_store.set_practice(practice)
    return practice


# --- people ------------------------------------------------------------------------------------------


MAX_NAME = 200
# Bidirectional overrides and isolates: they make a name display as something else ("evil" shown as
# "live"), in the inbox and in an email's From name.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _check_name(value: str, field: str) -> str:
    """A person's or practice's name: 1 to 200 characters, on one line, without control characters. A
    practice's name becomes an email's Subject and From name, where a line break would start a header
    of its own; a person's shows in other people's inboxes."""
    value = value.strip()
    if not 1 <= len(value) <= MAX_NAME:
        raise Invalid("invalid_name", f"{field} must be 1 to {MAX_NAME} characters.", field=field)
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or c in _BIDI_CONTROLS for c in value):
        raise Invalid(
            "invalid_name",
            f"{field} must be one line of text, without control characters.",
            field=field,
        )
    return value


def _check_email(value: str, field: str = "email") -> str:
    value = value.strip().lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or len(value) > 254 or any(c.isspace() for c in value):
        raise Invalid("invalid_email", f"{field} is not an email address.", field=field)
    return value


def password_is_personal() -> Forbidden:
    """R25: nobody sets another person's password once the account exists."""
    return Forbidden(
        "password_is_personal",
        "A password is personal: only its owner changes it, or resets it through an emailed link.",
        rule="R25",
    )


MIN_PASSWORD, MAX_PASSWORD = 10, 256  # characters


def check_new_password(value: str, field: str = "password") -> None:
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise Invalid(
            "weak_password", f"A password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters.", field=field
        )


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
        found = await people.get_participant(practice_id, participant_id, kind)
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
    then: Callable[[Participant], Awaitable[object]] | None = None,
) -> Participant:
    """A team member (with `password`, hashed before the transaction). `then`: the caller's audit row,
    in the creation's transaction (R24)."""
    role_str = _check_roles(roles)
    email = _check_email(email)
    if password is not None:
        check_new_password(password)
    pw_hash = await hash_password(password) if password else None
    # Unique within the practice only: whether another practice has this address is not this one's
    # business, and refusing it would let anyone holding an API key probe for (or reserve) addresses.
    async with db.transaction():
        if await people.has_team_member_with_email(practice_id, email):
            raise Conflict("email_taken", "A team member of this practice already has this email address.")
        member = await people.add_team_member(
            practice_id,
            name=_check_name(name, "name"),
            email=email,
            roles=role_str,
            messaging_enabled=messaging_enabled,
            can_export=can_export and bool({"practice_manager", "account_owner"} & set(roles)),
            password_hash=pw_hash,
            created_at=ctx.clock.now(),
        )
        if then is not None:
            await then(member)
    return member


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
        raise password_is_personal()
    if member.can_export and not ({"practice_manager", "account_owner"} & member.role_set):
        raise Invalid(
            "can_export_needs_manager",
            "Only an account owner or practice manager can export data.",
            field="can_export",
        )
    await people.set_person(member)
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
    return await people.add_client(
        practice.id,
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
    async with db.transaction():
        await people.set_person(client)
        if turned_off:
            # R4: nothing keeps working after "off": the links and sessions of the client and its
            # contacts end now.
            await revoke_everything_for_client(ctx, client)
    return client


async def client_and_contacts(client: Participant) -> list[int]:
    """The client and its contacts: whose access a change to the client's flags ends (R4, R10)."""
    return [client.id, *await people.list_contact_ids(client.id)]


async def revoke_everything_for_client(ctx: InboxContext, client: Participant) -> None:
    ids = await client_and_contacts(client)
    now = ctx.clock.now()
    await access.revoke_links_and_tokens(ids, now)


async def add_contact(ctx: InboxContext, client: Participant, *, name: str, email: str) -> Participant:
    return await people.add_contact(
        client,
        name=_check_name(name, "name"),
        email=_check_email(email),
        portal_access=True,
        messaging_enabled=True,
        created_at=ctx.clock.now(),
    )


async def grant_access(ctx: InboxContext, client: Participant, member: Participant) -> bool:
    return await people.add_access_grant(client.id, member.id, ctx.clock.now())


async def withdraw_access(client: Participant, member: Participant) -> bool:
    return bool(await people.delete_access_grant(client.id, member.id))


async def access_list(client: Participant) -> list[int]:
    """The team members granted access to this client's profile (the primary clinician has it anyway)."""
    return await people.list_grantees(client.id)


# --- sign-in and tokens ------------------------------------------------------------------------------


@dataclass
class Principal:
    """Who is calling: a participant's token, or one of the practice's API keys (participant None)."""

    practice_id: int
    kind: str  # session | app | api_key
    token_id: int
    participant: Participant | None
    csrf_token: str | None = None
    scopes: frozenset[str] = frozenset()  # an API key's (R29)
    last_used_at: datetime | None = None  # an API key's

    @property
    def is_api_key(self) -> bool:
        return self.kind == "api_key"


async def issue_token(
    ctx: InboxContext, participant: Participant, kind: str, ttl_s: int | None = None, *, csrf: bool = False
) -> tuple[str, AuthToken]:
    token = new_token()
    now = ctx.clock.now()
    row = await tokens.add_token(
        participant,
        token_hash=hash_token(token, ctx.secret),
        kind=kind,
        csrf_token=new_token(24) if csrf else None,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s or ctx.session_ttl_s),
    )
    return token, row


CALLER_COLUMNS = tokens.CALLER_COLUMNS  # kept under its old name for callers in flight
MAX_TOKEN_CHARS = 200


def presented_token_hash(ctx: InboxContext, token: str) -> str | None:
    """What a bearer token or session cookie is looked up by, or None for one that cannot be ours."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return hash_token(token, ctx.secret)


async def resolve_token(ctx: InboxContext, token: str) -> Principal | None:
    token_hash = presented_token_hash(ctx, token)
    if token_hash is None:
        return None
    row = await tokens.get_caller_row(token_hash)
    return principal_from_row(row, ctx.clock.now()) if row is not None else None


def principal_from_row(row: Mapping[str, Any], now: datetime) -> Principal | None:
    """The caller from a row of `CALLER_COLUMNS` and the token's participant's columns; None when the
    token no longer holds (`token_holds`)."""
    participant = tokens.participant_from_row(row) if row["t_participant_id"] is not None else None
    if not token_holds(
        row["t_expires_at"],
        row["t_participant_id"],
        None if participant is None else participant.active,
        now,
    ):
        return None
    return Principal(
        row["t_practice_id"],
        row["t_kind"],
        row["t_id"],
        participant,
        row["t_csrf_token"],
        frozenset(s for s in (row.get("t_scopes") or "").split(",") if s),
        tokens.as_datetime(row.get("t_last_used_at")),
    )


def token_holds(expires_at: Any, participant_id: int | None, active: Any, now: datetime) -> bool:
    """Whether a live (not revoked) token still lets its caller in: it has not expired, and its participant
    (`participant_id`; None for a practice API key's token) still exists (`active` None: the row is gone)
    and is active. Asked of every request, here and in the send's own query (`inbox.sending.read_caller`)."""
    if token_expired(expires_at, now):
        return False
    if participant_id is None:
        return True
    if active is None:
        return False
    return bool(active)  # R26: deactivation revokes the tokens too; this holds even if one was missed


async def revoke_token(ctx: InboxContext, principal: Principal) -> None:
    """Sign out: the token stops working and the devices this session registered stop getting pushes."""
    await access.revoke_token(principal.token_id, ctx.clock.now())


WRONG_CREDENTIALS = ("invalid_credentials", "The email or password is not right.")


def wrong_credentials() -> Unauthenticated:
    """The one answer for every sign-in that does not work: a wrong password, an unknown address, a locked
    or deactivated account (R26). Telling them apart would tell an attacker that an address exists."""
    return Unauthenticated(*WRONG_CREDENTIALS)


class OtpRequired(Unauthenticated):
    """The password was right and the account has TOTP on: the code is needed (API: 401 `otp_required`)."""

    def __init__(self, member: Participant) -> None:
        super().__init__("otp_required", "Enter the code from your authenticator app.")
        self.member = member


async def team_accounts(email: str, practice_id: int | None = None) -> list[Participant]:
    """The team accounts with this address: one per practice at most (addresses are unique per practice,
    not across practices)."""
    if practice_id is not None and not is_id(practice_id):
        return []
    return await people.list_team_accounts(email.strip().lower()[:254], practice_id)


def _locked(member: Participant, now: datetime) -> bool:
    return member.locked_until is not None and member.locked_until > now


# --- whether access still holds (R27) ----------------------------------------------------------------
#
# A credential works while its token row is not revoked (`revoked_at IS NULL` in the lookups above and
# below), has not expired (`token_expired`) and its participant still exists: that is the HTTP path
# (`resolve_token`, `inbox.sending.read_caller`). A websocket also needs its participant to take part in
# messaging (`takes_part`: R3, R4, R10), since what it carries is messages. `ended_credentials` asks all of
# this for every socket a gateway process holds, in one query per tick (gateway.realtime).


def token_expired(expires_at: Any, now: datetime) -> bool:
    """`expires_at` as stored (a datetime, or SQLite's text); a token without one never expires."""
    when = tokens.as_datetime(expires_at)
    return when is not None and when <= now


class Standing(Protocol):
    """What `takes_part` reads of a person: a `Participant`, or the few columns the re-check selects."""

    @property
    def kind(self) -> str: ...
    @property
    def messaging_enabled(self) -> bool: ...
    @property
    def portal_access(self) -> bool: ...


def takes_part(person: Standing, client: Standing | None = None) -> bool:
    """R3, R4, R10: a team member while their messaging is on; a client while their messaging is on and they
    have portal access; a contact while that holds for them and for `client`, the client they belong to."""
    if not person.messaging_enabled:
        return False
    if person.kind == TEAM:
        return True
    if not person.portal_access:
        return False
    if person.kind == CONTACT:
        return client is not None and bool(client.messaging_enabled and client.portal_access)
    return person.kind == CLIENT


@dataclass(frozen=True, slots=True)
class _Flags:
    kind: str
    messaging_enabled: bool
    portal_access: bool


# Why a socket's access ended: its close reason (docs/api.md §4), which the pages turn into words.
SIGNED_OUT = "signed_out"  # revoked (sign-out, password change, deactivation) or gone
EXPIRED = "expired"
MESSAGING_OFF = "messaging_off"  # R3, R4, R10
_CHECK_BATCH = 512  # ids per query: well under every driver's limit on parameters


async def ended_credentials(ctx: InboxContext, token_ids: Collection[int]) -> dict[int, str]:
    """Of these tokens (the ones behind open websockets), those whose access has ended, each with why
    (SIGNED_OUT, EXPIRED, MESSAGING_OFF). One query for up to `_CHECK_BATCH` tokens; none for none."""
    ids = sorted(set(token_ids))
    now = ctx.clock.now()
    ended: dict[int, str] = {}
    for start in range(0, len(ids), _CHECK_BATCH):
        chunk = ids[start : start + _CHECK_BATCH]
        rows = await tokens.get_standing_rows(chunk)
        found = {row["id"]: row for row in rows}
        for token_id in chunk:
            why = _why_ended(found.get(token_id), now)
            if why is not None:
                ended[token_id] = why
    return ended


def _why_ended(row: Mapping[str, Any] | None, now: datetime) -> str | None:
    if row is None:
        return SIGNED_OUT
    if not row["active"]:
        return SIGNED_OUT  # R26: deactivated (its tokens are revoked too; this holds if one was missed)
    if token_expired(row["expires_at"], now):
        return EXPIRED
    person = _Flags(row["kind"], bool(row["messaging_enabled"]), bool(row["portal_access"]))
    client = None
    if row["c_messaging_enabled"] is not None:
        client = _Flags(CLIENT, bool(row["c_messaging_enabled"]), bool(row["c_portal_access"]))
    return None if takes_part(person, client) else MESSAGING_OFF


async def authenticate(
    ctx: InboxContext,
    email: str,
    password: str,
    otp: str | None,
    *,
    trusted_member_id: int | None = None,
    practice_id: int | None = None,
) -> Participant:
    """Team sign-in: password (argon2), then the TOTP code when enrolled.

    Ten failures (wrong passwords or wrong codes) lock the account for 15 minutes; during the lockout even
    the right password is refused, failures do not extend it, and then it opens again by itself. A locked
    or deactivated account answers exactly like a wrong password (`wrong_credentials`).

    An attacker could still keep a person locked out for good by sending ten wrong passwords every 15
    minutes. So a sign-in from a trusted device — one that signed in to this account before and shows the
    device token it was given (`device_token_for`, checked by `trusted_device_member`) — neither meets the
    account's lockout nor counts towards it; its own failures are throttled per device token by the caller
    (gateway.limits). The person keeps getting in from their own phone or browser while an attacker, who
    has no such token, stays locked out. (The pattern is OWASP's "device cookies".)

    One address may have an account at several practices. The password is tried against each of them
    (and against a dummy hash when there is none, so that the time taken does not tell); the account it
    opens is the one signed in to. When it opens more than one, the caller must name the practice
    (`practice_id`): 409 `practice_required` with the practices to choose from. Only the person who
    knows the password learns about the other accounts.
    """
    now = ctx.clock.now()
    candidates = await team_accounts(email, practice_id)
    if not candidates:
        await verify_password(None, password)
        raise wrong_credentials()
    opened = [m for m in candidates if await verify_password(m.password_hash, password)]
    usable = [m for m in opened if m.active and (m.id == trusted_member_id or not _locked(m, now))]
    if not usable:
        if not opened:
            for member in candidates:
                if member.active and member.id != trusted_member_id and not _locked(member, now):
                    await _count_failure(member, now)
        raise wrong_credentials()
    if len(usable) > 1:
        choices = await practices_store.list_practices([m.practice_id for m in usable])
        raise Conflict(
            "practice_required",
            "This address and password open accounts at more than one practice; choose one.",
            practices=[{"id": p.id, "name": p.name} for p in choices],
        )
    member = usable[0]
    trusted = member.id == trusted_member_id
    if member.totp_enabled and member.totp_secret_cipher:
        if not otp:
            raise OtpRequired(member)
        await verify_otp(ctx, member, otp, trusted_device=trusted)
    elif not trusted:
        await _clear_failures(member)
    return member


async def verify_otp(
    ctx: InboxContext, member: Participant, code: str, *, trusted_device: bool = False
) -> None:
    """The second factor (API sign-in and the web page's code step). A wrong code counts towards the same
    lockout as a wrong password: with the password known, the six digits are all that is left to guess."""
    now = ctx.clock.now()
    if not member.active or (not trusted_device and _locked(member, now)):
        raise wrong_credentials()
    step = totp_step(ctx, member, code)
    if step is None or not await _use_totp_step(member, step):
        if not trusted_device:
            await _count_failure(member, now)
        raise Unauthenticated("invalid_otp", "That code is not right, or it has been used already.")
    if not trusted_device:
        # A trusted device's success does not clear the count: someone else may be guessing meanwhile.
        await _clear_failures(member)


async def _count_failure(member: Participant, now: datetime) -> None:
    member.failed_logins += 1
    if member.failed_logins >= LOCKOUT_AFTER:
        member.locked_until = now + timedelta(seconds=LOCKOUT_S)
        member.failed_logins = 0
    await people.set_login_failures(member)


async def _clear_failures(member: Participant) -> None:
    if member.failed_logins or member.locked_until:
        member.failed_logins = 0
        member.locked_until = None
        await people.set_login_failures(member)


DEVICE_TOKEN_PREFIX = "smd_"  # noqa: S105 - a label, not a secret


def _device_mac(ctx: InboxContext, member: Participant, nonce: str) -> str:
    # The account and its credential epoch are in the MAC: a password change or reset, or a deactivation
    # (`inbox.access.end_access`), raises the epoch, and every device trusted before stops being trusted.
    message = f"device-trust:{member.id}:{member.email}:{member.credential_epoch}:{nonce}".encode()
    return hmac.new(ctx.secret, message, hashlib.sha256).hexdigest()


def device_token_for(ctx: InboxContext, member: Participant) -> str:
    """A token that marks the device that just signed in to this account as trusted for later sign-ins.
    Nothing is stored: it is a random nonce and an HMAC over it, the account and its credential epoch
    with the server secret."""
    nonce = new_token(16)
    return f"{DEVICE_TOKEN_PREFIX}{nonce}.{_device_mac(ctx, member, nonce)}"


def device_token_valid(ctx: InboxContext, member: Participant, token: str | None) -> bool:
    if not token or len(token) > 200 or not token.startswith(DEVICE_TOKEN_PREFIX):
        return False
    nonce, _, mac = token[len(DEVICE_TOKEN_PREFIX) :].partition(".")
    return bool(nonce and mac) and hmac.compare_digest(mac.encode(), _device_mac(ctx, member, nonce).encode())


async def trusted_device_member(
    ctx: InboxContext, email: str, token: str | None, practice_id: int | None = None
) -> int | None:
    """The id of the active account with this address that `token` marks as a trusted device, if any."""
    if not token or not token.startswith(DEVICE_TOKEN_PREFIX) or len(token) > 200:
        return None
    for member in await team_accounts(email, practice_id):
        if member.active and device_token_valid(ctx, member, token):
            return member.id
    return None


async def start_totp_enrolment(ctx: InboxContext, member: Participant, issuer: str) -> str:
    """docs/api.md: enrolling turns the second factor on at once; a new enrolment replaces the old secret. The
    caller has checked the password (and current code) first: `reconfirm`."""
    secret = pyotp.random_base32()
    await set_totp_secret(ctx, member, secret, last_step=None)
    return pyotp.TOTP(secret).provisioning_uri(name=member.email, issuer_name=issuer)


async def set_totp_secret(
    ctx: InboxContext, member: Participant, secret: str, *, last_step: int | None
) -> None:
    """Turn TOTP on with `secret`, sealed (R30). `last_step`: the step of the code that confirmed it, if
    one did, so that code cannot sign in afterwards; the old secret's steps mean nothing to the new one."""
    member.totp_secret_cipher = sealed.seal_totp(ctx.keyring, member, secret)
    member.totp_secret = None
    member.totp_enabled = True
    member.totp_last_step = last_step
    await people.set_totp(member)


def totp_step(ctx: InboxContext, member: Participant, code: str, *, pending: str | None = None) -> int | None:
    """The time step whose code `code` is — the current one, or one either side for clock drift — when that
    step is later than the last one accepted (R30: a code works once, never one from an earlier step).
    `pending`: a new secret being confirmed, checked instead of the member's own (no step used yet)."""
    secret = pending if pending is not None else sealed.open_totp(ctx.keyring, member)
    last = None if pending is not None else member.totp_last_step
    code = (code or "").replace(" ", "").strip()
    if not secret or not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(ctx.clock.now())
    for step in (now_step - 1, now_step, now_step + 1):
        if last is not None and step <= last:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def _use_totp_step(member: Participant, step: int) -> bool:
    """Record `step` as the last accepted — unless another request (another process) accepted this step or a
    later one first: then this use is a replay and is refused."""
    won = await people.set_totp_step_if_later(member.id, step)
    member.totp_last_step = step
    return bool(won)


async def reconfirm(ctx: InboxContext, member: Participant, password: str, otp: str | None) -> None:
    """Before the second factor is set up or replaced (R30): the password, and the current code when one is
    on — a bearer token or session alone is not enough. Failures count towards the sign-in lockout, so a
    stolen token cannot be used to guess the password here either."""
    now = ctx.clock.now()
    if member.locked_until is not None and member.locked_until > now:
        raise Forbidden("account_locked", "Too many failed sign-ins; try again in a few minutes.")
    if not await verify_password(member.password_hash, password):
        await _count_failure(member, now)
        raise Forbidden("invalid_password", "The password is not right.", field="password")
    if member.totp_enabled and member.totp_secret_cipher:
        if not otp:
            raise Forbidden(
                "otp_required", "Enter the code your authenticator app shows now.", field="otp", rule="R30"
            )
        step = totp_step(ctx, member, otp)
        if step is None or not await _use_totp_step(member, step):
            await _count_failure(member, now)
            raise Forbidden(
                "invalid_otp", "That code is not right, or it has been used already.", field="otp"
            )
    await _clear_failures(member)


def is_owner_level(principal: Principal) -> bool:
    """An account owner's token. Not an API key: a key never holds the account owner's role (R29)."""
    member = principal.participant
    return member is not None and member.kind == TEAM and "account_owner" in member.role_set


def check_team_change(
    principal: Principal, target: Participant | None, roles: list[str] | None, sets_can_export: bool
) -> None:
    """Practice managers run the team, but not past their own rights: only the account owner (or the
    practice's API key) changes an account owner's account, makes someone an account owner, or decides who
    may export client data (R23). Otherwise a manager could lock the owner out, or give themself the
    export and the audit log (R24). Nobody sets another person's password at all (R25).

    An API key provisions people like a manager, but it also decides who may export, as the practice's
    single key always could (R29: the key is the owner's tool; never the owner's role or account)."""
    if is_owner_level(principal):
        return
    if principal.is_api_key:
        sets_can_export = False
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
        apikeys.require_scope(principal, apikeys.PROVISIONING)
        return
    member = principal.participant
    if member is None or member.kind != TEAM or not ({"account_owner", "practice_manager"} & member.role_set):
        raise Forbidden("managers_only", "Only the account owner or a practice manager can do this.")
