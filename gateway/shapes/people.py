"""Provisioning and sign-in (docs/api.md §3): settings, team members, clients, contacts, access, login."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import model_validator

from gateway.shapes.common import Role
from gateway.shapes.messaging import Me
from gateway.typed import Answer, Body, Id, Int, absent, items, limit
from inbox.accounts import (
    MAX_NAME,
    MAX_PASSWORD,
    MAX_UNREAD_DELAY_S,
    MIN_PASSWORD,
    MIN_UNREAD_DELAY_S,
    password_is_personal,
)
from inbox.kinds import ROLES

if TYPE_CHECKING:
    from inbox.models import Participant

# Checked by the domain with its own codes: 422 invalid_name, invalid_email, weak_password.
Name = Annotated[str, limit(minLength=1, maxLength=MAX_NAME)]
Email = Annotated[str, limit(format="email", maxLength=254)]
Password = Annotated[str, limit(minLength=MIN_PASSWORD, maxLength=MAX_PASSWORD)]
Roles = Annotated[
    list[str], items(len(ROLES)), limit(minItems=1, items={"type": "string", "enum": list(ROLES)})
]
Delay = Annotated[Int, limit(minimum=MIN_UNREAD_DELAY_S, maximum=MAX_UNREAD_DELAY_S)]

# --- requests ---------------------------------------------------------------------------------------------


class LoginBody(Body):
    email: str
    password: str
    otp: str | None = None
    device_token: str | None = None
    practice_id: Int | None = None


class SettingsBody(Body):
    client_messaging_enabled: bool = absent()
    team_messaging_enabled: bool = absent()
    auto_enable_new_clients: bool = absent()
    unread_email_delay_s: Delay = absent()
    name: Name = absent()
    allow_unencrypted_exports: bool = absent()
    # An IANA zone ("America/New_York"), checked by the domain: 400 invalid_field when unknown.
    time_zone: str = absent()


class NewTeamMember(Body):
    # In the order they were always checked: the first bad one is the one named.
    roles: Roles
    can_export: bool = absent()
    name: Name
    email: Email
    password: Password | None = None
    messaging_enabled: bool = absent()


class TeamMemberChange(Body):
    messaging_enabled: bool = absent()
    roles: Roles = absent()
    can_export: bool = absent()
    name: Name = absent()
    active: bool = absent()
    password: Annotated[Any, limit(type="string")] = absent()  # always refused (R25)

    @model_validator(mode="before")
    @classmethod
    def _password_is_personal(cls, data: Any) -> Any:
        """R25: a password is refused whatever else the body holds (once every field is one of ours)."""
        if isinstance(data, dict) and "password" in data and set(data) <= set(cls.model_fields):
            raise password_is_personal()
        return data


class TotpBody(Body):
    password: Password
    otp: str | None = None


class NewClient(Body):
    portal_access: bool = absent()
    name: Name
    email: Email
    primary_clinician_id: Id | None = None
    messaging_enabled: bool = absent()


class ClientChange(Body):
    messaging_enabled: bool = absent()
    primary_clinician_id: Id | None = absent()
    portal_access: bool = absent()
    name: Name = absent()
    email: Email = absent()


class NewContact(Body):
    name: Name
    email: Email


# --- answers ----------------------------------------------------------------------------------------------


class Settings(Answer):
    name: str
    client_messaging_enabled: bool
    team_messaging_enabled: bool
    auto_enable_new_clients: bool
    unread_email_delay_s: int
    allow_unencrypted_exports: bool
    # The practice's time zone for chart notes, transcripts and exports ("UTC" until one is chosen).
    time_zone: str
    time_zone_chosen: bool


class TeamMember(Answer):
    id: int
    name: str
    email: str
    kind: Literal["team"]
    roles: list[Role]
    messaging_enabled: bool
    can_export: bool
    totp_enabled: bool
    away: bool
    active: bool

    @classmethod
    def of(cls, p: Participant) -> TeamMember:
        return cls.model_construct(
            id=p.id,
            name=p.name,
            email=p.email,
            kind=p.kind,
            roles=sorted(p.role_set),
            messaging_enabled=p.messaging_enabled,
            can_export=p.can_export,
            totp_enabled=p.totp_enabled,
            away=p.away_enabled,
            active=p.active,
        )


class Client(Answer):
    id: int
    name: str
    email: str
    kind: Literal["client"]
    primary_clinician_id: int | None
    portal_access: bool
    messaging_enabled: bool

    @classmethod
    def of(cls, p: Participant) -> Client:
        return cls.model_construct(
            id=p.id,
            name=p.name,
            email=p.email,
            kind=p.kind,
            primary_clinician_id=p.primary_clinician_id,
            portal_access=p.portal_access,
            messaging_enabled=p.messaging_enabled,
        )


class Contact(Answer):
    id: int
    name: str
    email: str
    kind: Literal["contact"]
    client_id: int

    @classmethod
    def of(cls, p: Participant) -> Contact:
        return cls.model_construct(id=p.id, name=p.name, email=p.email, kind=p.kind, client_id=p.client_id)


class Access(Answer):
    client_id: int
    team_member_id: int
    access: bool


class AccessList(Answer):
    primary_clinician_id: int | None
    team_member_ids: list[int]


class TeamMembers(Answer):
    items: list[TeamMember]


class Clients(Answer):
    items: list[Client]


class Contacts(Answer):
    items: list[Contact]


class SignedIn(Answer):
    token: str
    participant: Me
    device_token: str


class ProvisioningUri(Answer):
    provisioning_uri: str
