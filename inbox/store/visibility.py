"""Which clients a team member sees (R28: `participant`, `client_access`), and the people the team's notices
and `messaging.changed` are about: team members nobody can write to, everyone of a practice."""

from __future__ import annotations

from typing import Any

from tortoise.expressions import Q

from inbox.models import CLIENT, TEAM, ClientAccess, Participant
from inbox.store.orm import ids_of


async def _clients(practice_id: int, team_member_id: int | None) -> Any:
    """The practice's clients; only those of this team member (primary clinician, or granted access), when
    given."""
    query = Participant.filter(practice_id=practice_id, kind=CLIENT)
    if team_member_id is None:
        return query
    granted = await ids_of(ClientAccess.filter(team_member_id=team_member_id), "client_id")
    return query.filter(Q(primary_clinician_id=team_member_id) | Q(id__in=granted))


async def list_visible_clients(practice_id: int, team_member_id: int | None, limit: int) -> list[Participant]:
    """The practice's clients (only this team member's, when given), by name, at most `limit`."""
    return list(await (await _clients(practice_id, team_member_id)).order_by("name", "id").limit(limit))


async def get_visible_client(
    practice_id: int, team_member_id: int | None, client_id: int
) -> Participant | None:
    """The practice's client with this id, if it is one of this team member's (when given)."""
    return await (await _clients(practice_id, team_member_id)).filter(id=client_id).first()


async def list_unreachable_team_members(
    practice_id: int, exclude_id: int, needle: str, limit: int
) -> list[Participant]:
    """The practice's team members (but `exclude_id`) who are deactivated or have messaging off, whose name or
    email address holds `needle`, by name, at most `limit`."""
    query = (
        Participant.filter(practice_id=practice_id, kind=TEAM)
        .exclude(id=exclude_id)
        .filter(Q(active=False) | Q(messaging_enabled=False))
        .filter(Q(name__icontains=needle) | Q(email__icontains=needle))
    )
    return list(await query.order_by("name", "id").limit(limit))


async def get_practice_people_ids(practice_id: int) -> list[int]:
    """Everyone of the practice: team members, clients, contacts."""
    return await ids_of(Participant.filter(practice_id=practice_id), "id")
