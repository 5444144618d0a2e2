"""People (`participant`: team members, clients, contacts) and access grants (`client_access`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from tortoise.expressions import Q

from inbox.models import CLIENT, CONTACT, TEAM, ClientAccess, Participant


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
