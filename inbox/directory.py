"""Who is in a practice, as the API and the pages list them: the practice, its team members, clients and
contacts. Reads only; who may see which client is `inbox.visibility` (R28), changes are `inbox.accounts`."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from inbox.models import Participant, Practice
from inbox.store import people, practices


async def get_practice(practice_id: int) -> Practice:
    return await practices.get_practice(practice_id)


async def team_members(practice_id: int, *, include_inactive: bool = True) -> list[Participant]:
    """By name; R26: without the deactivated ones unless asked."""
    return await people.list_team_members(practice_id, include_inactive=include_inactive)


async def clients(practice_id: int, limit: int) -> list[Participant]:
    """By name, at most `limit` (a page that lists them all)."""
    return await people.list_clients(practice_id, limit)


async def contacts_of(client: Participant) -> list[Participant]:
    return await people.list_contacts(client.id)


async def contacts_by_client(practice_id: int, of: Sequence[Participant]) -> dict[int, list[Participant]]:
    """The contacts of these clients, by name, under their client's id."""
    found: dict[int, list[Participant]] = {}
    if of:
        for contact in await people.list_contacts_of(practice_id, [c.id for c in of]):
            found.setdefault(contact.client_id or 0, []).append(contact)
    return found


async def everyone(practice_id: int, limit: int) -> list[Participant]:
    """Everyone of the practice, by kind and name, at most `limit`."""
    return await people.list_people(practice_id, limit)


async def people_by_id(ids: Collection[int]) -> list[Participant]:
    return await people.get_participants(ids)


async def has_access(member: Participant, client: Participant) -> set[tuple[int, int]]:
    """The member's access grant to the client, as the permission functions take grants: {(member, client)}
    or nothing."""
    return await people.get_access_grants([client.id], [member.id])
