"""What the client portal and its sign-ins read of people and practices (`participant`, `practice`): who holds
a link, who has an address, a contact's client, a client's clinician, the practice's name."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from inbox.models import Participant, Practice
from inbox.store.orm import ids_of


async def get_person(
    participant_id: int, *, practice_id: int | None = None, kind: str | None = None
) -> Participant | None:
    """The person with this id (of this practice, of this kind, when given), or None."""
    conditions: dict[str, Any] = {"id": participant_id}
    if practice_id is not None:
        conditions["practice_id"] = practice_id
    if kind is not None:
        conditions["kind"] = kind
    return await Participant.get_or_none(**conditions)


async def get_practice_or_none(practice_id: int) -> Practice | None:
    return await Practice.get_or_none(id=practice_id)


async def get_people_with_email(
    address: str, kinds: Collection[str], *, by_id: bool = False
) -> list[Participant]:
    """The people of these kinds with this (normalised) address, at any practice; by id when asked, else in
    the database's order."""
    query = Participant.filter(email=address, kind__in=list(kinds))
    if by_id:
        query = query.order_by("id")
    return list(await query)


async def get_ids_with_email(address: str, kinds: Collection[str]) -> list[int]:
    """The ids of the people of these kinds with this (normalised) address, at any practice."""
    return await ids_of(Participant.filter(email=address, kind__in=list(kinds)), "id")
