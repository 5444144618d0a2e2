"""People (`participant`: team members, clients, contacts) and access grants (`client_access`).

What a new person's flags and roles are, and when a sign-in failure locks an account, is the domain's
(`inbox.accounts`): these write the values they are given.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from tortoise.expressions import Q

from inbox.models import CLIENT, CONTACT, TEAM, ClientAccess, Participant, Practice
from inbox.store.orm import ids_of


async def get_participants(ids: Collection[int], practice_id: int | None = None) -> list[Participant]:
    """These people (of this practice, when given), by id."""
    query = Participant.filter(id__in=list(ids))
    if practice_id is not None:
        query = query.filter(practice_id=practice_id)
    return list(await query.order_by("id"))


async def get_client(practice_id: int, client_id: int) -> Participant | None:
    return await Participant.filter(id=client_id, practice_id=practice_id, kind=CLIENT).first()


async def get_access_grants(
    client_ids: Iterable[int | None], team_ids: Iterable[int]
) -> set[tuple[int, int]]:
    """The (team member, client) pairs of these with access (R28)."""
    rows = await ClientAccess.filter(
        client_id__in=[c for c in client_ids if c is not None], team_member_id__in=list(team_ids)
    ).values_list("team_member_id", "client_id")
    return {(int(t), int(c)) for t, c in rows}


async def save_away(person: Participant) -> None:
    await person.save(update_fields=["away_enabled", "away_message"])


async def search_people(
    practice_id: int, exclude_id: int, *, team_only: bool, needle: str, limit: int
) -> list[Participant]:
    """The recipient picker's matches: people of the practice but `exclude_id` (team members only, when
    asked), whose name or email address holds `needle` (any, when empty), by name."""
    query = Participant.filter(practice_id=practice_id).exclude(id=exclude_id)
    if team_only:
        query = query.filter(kind=TEAM)
    if needle:
        query = query.filter(Q(name__icontains=needle) | Q(email__icontains=needle))
    return list(await query.order_by("name").limit(limit))


async def list_team_members(practice_id: int, *, include_inactive: bool = True) -> list[Participant]:
    """The practice's team members, by name (R26: without the deactivated ones unless asked)."""
    query = Participant.filter(practice_id=practice_id, kind=TEAM)
    if not include_inactive:
        query = query.filter(active=True)
    return list(await query.order_by("name", "id"))


async def list_clients(practice_id: int, limit: int) -> list[Participant]:
    """The practice's clients, by name, at most `limit`."""
    return list(
        await Participant.filter(practice_id=practice_id, kind=CLIENT).order_by("name", "id").limit(limit)
    )


async def list_contacts(client_id: int) -> list[Participant]:
    """A client's contacts, oldest first."""
    return list(await Participant.filter(client_id=client_id, kind=CONTACT).order_by("id"))


async def list_contacts_of(practice_id: int, client_ids: Collection[int]) -> list[Participant]:
    """The contacts of these clients, by name."""
    return list(
        await Participant.filter(
            practice_id=practice_id, kind=CONTACT, client_id__in=list(client_ids)
        ).order_by("name", "id")
    )


async def list_people(practice_id: int, limit: int) -> list[Participant]:
    """Everyone of the practice, by kind and name, at most `limit`."""
    return list(await Participant.filter(practice_id=practice_id).order_by("kind", "name", "id").limit(limit))


# --- one person --------------------------------------------------------------------------------------


async def get_participant(
    practice_id: int, participant_id: int, kind: str | None = None
) -> Participant | None:
    """The practice's participant with this id (of this kind, when given), or None."""
    query = Participant.filter(id=participant_id, practice_id=practice_id)
    if kind:
        query = query.filter(kind=kind)
    return await query.first()


async def get_active_team_member(member_id: int) -> Participant | None:
    """The team member with this id, if they are active (R26)."""
    return await Participant.filter(id=member_id, kind=TEAM, active=True).first()


async def list_team_accounts(email: str, practice_id: int | None = None) -> list[Participant]:
    """The team members with this (normalised) address, at every practice or at this one, by id."""
    query = Participant.filter(kind=TEAM, email=email)
    if practice_id is not None:
        query = query.filter(practice_id=practice_id)
    return list(await query.order_by("id"))


async def get_team_members(ids: Collection[int]) -> list[Participant]:
    """The team members among these ids, in no particular order."""
    return list(await Participant.filter(id__in=list(ids), kind=TEAM))


async def has_team_member_with_email(practice_id: int, email: str) -> bool:
    return await Participant.filter(practice_id=practice_id, kind=TEAM, email=email).exists()


async def has_other_active_owner(practice_id: int, member_id: int) -> bool:
    """Whether the practice has an active account owner other than `member_id`."""
    return (
        await Participant.filter(
            practice_id=practice_id, kind=TEAM, active=True, roles__contains="account_owner"
        )
        .exclude(id=member_id)
        .exists()
    )


async def list_contact_ids(client_id: int) -> list[int]:
    """The ids of a client's contacts."""
    return await ids_of(Participant.filter(client_id=client_id, kind=CONTACT), "id")


# --- new people --------------------------------------------------------------------------------------


async def add_team_member(
    practice: Practice | int,
    *,
    name: str,
    email: str,
    roles: str,
    messaging_enabled: bool,
    can_export: bool,
    password_hash: str | None,
    created_at: datetime,
) -> Participant:
    """A new team member of `practice` (a practice just added, or a practice's id)."""
    where = {"practice": practice} if isinstance(practice, Practice) else {"practice_id": practice}
    return await Participant.create(
        **where,
        kind=TEAM,
        name=name,
        email=email,
        roles=roles,
        messaging_enabled=messaging_enabled,
        can_export=can_export,
        password_hash=password_hash,
        created_at=created_at,
    )


async def add_client(
    practice_id: int,
    *,
    name: str,
    email: str,
    primary_clinician: Participant | None,
    portal_access: bool,
    messaging_enabled: bool,
    created_at: datetime,
) -> Participant:
    return await Participant.create(
        practice_id=practice_id,
        kind=CLIENT,
        name=name,
        email=email,
        primary_clinician=primary_clinician,
        portal_access=portal_access,
        messaging_enabled=messaging_enabled,
        created_at=created_at,
    )


async def add_contact(
    client: Participant,
    *,
    name: str,
    email: str,
    portal_access: bool,
    messaging_enabled: bool,
    created_at: datetime,
) -> Participant:
    """A new contact of `client`, at the client's practice."""
    return await Participant.create(
        practice_id=client.practice_id,
        kind=CONTACT,
        name=name,
        email=email,
        client=client,
        portal_access=portal_access,
        messaging_enabled=messaging_enabled,
        created_at=created_at,
    )


# --- changes to a person -----------------------------------------------------------------------------


async def set_person(person: Participant) -> None:
    """Write back every column of `person` (a change to a team member's or client's profile)."""
    await person.save()


async def set_login_failures(member: Participant) -> None:
    """Write back `failed_logins` and `locked_until` (the sign-in lockout)."""
    await member.save(update_fields=["failed_logins", "locked_until"])


async def set_totp(member: Participant) -> None:
    """Write back the second factor: its sealed secret, the plain column (emptied), whether it is on, and
    its last step."""
    await member.save(update_fields=["totp_secret_cipher", "totp_secret", "totp_enabled", "totp_last_step"])


async def set_totp_step_if_later(member_id: int, step: int) -> int:
    """Record `step` as the member's last accepted TOTP step, unless that step or a later one is recorded
    already (another request's). How many rows changed: 1, or 0 for a replay."""
    return await (
        Participant.filter(id=member_id)
        .filter(Q(totp_last_step__isnull=True) | Q(totp_last_step__lt=step))
        .update(totp_last_step=step)
    )


async def set_password_hash(member: Participant) -> None:
    await member.save(update_fields=["password_hash"])


async def set_password_hash_and_unlock(member: Participant) -> None:
    """Write back `password_hash`, `failed_logins` and `locked_until` (a reset by link)."""
    await member.save(update_fields=["password_hash", "failed_logins", "locked_until"])


async def set_active(member: Participant) -> None:
    await member.save(update_fields=["active"])


async def set_active_and_unlock(member: Participant) -> None:
    """Write back `active`, `failed_logins` and `locked_until` (a reactivation)."""
    await member.save(update_fields=["active", "failed_logins", "locked_until"])


# --- access grants (R28) -----------------------------------------------------------------------------


async def add_access_grant(client_id: int, team_member_id: int, now: datetime) -> bool:
    """Grant the team member access to the client; False when the grant was there already."""
    _, created = await ClientAccess.get_or_create(
        client_id=client_id, team_member_id=team_member_id, defaults={"created_at": now}
    )
    return created


async def delete_access_grant(client_id: int, team_member_id: int) -> int:
    """Withdraw the grant; how many rows went (0 or 1)."""
    return await ClientAccess.filter(client_id=client_id, team_member_id=team_member_id).delete()


async def list_grantees(client_id: int) -> list[int]:
    """The ids of the team members granted access to this client, in order."""
    return await ids_of(ClientAccess.filter(client_id=client_id).order_by("team_member_id"), "team_member_id")
