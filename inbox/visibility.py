"""Which clients a caller sees in lists and by id (R28): the clients they may message or read.

- Billers, schedulers, practice managers and account owners: every client of the practice (R6; the owner
  holds every file, R21). A supervisor or clinician who is also one of these sees all too (R7).
- Clinicians and supervisors otherwise: the clients they have access to — primary clinician, or granted
  access (R5, R7, R21).
- A practice API key (with the provisioning scope, checked by the caller): every client.
- Clients and contacts: none (the views refuse them before asking).

A client outside this set is "not found" (404) by id, as another practice's client is: a list must not
be worked around one id at a time.
"""

from __future__ import annotations

from inbox.accounts import Principal
from inbox.errors import NotFound
from inbox.ids import is_id
from inbox.models import TEAM, Participant
from inbox.permissions import ANY_CLIENT_ROLES
from inbox.store import visibility as visibility_store

MAX_LIST = 1000


def sees_every_client(principal: Principal) -> bool:
    member = principal.participant
    return member is None or bool(member.role_set & ANY_CLIENT_ROLES)


def _limited_to(principal: Principal) -> int | None:
    """The team member whose clients alone this caller sees, or None: every client of the practice."""
    member = principal.participant
    if sees_every_client(principal):
        return None
    assert member is not None and member.kind == TEAM
    return member.id


async def visible_clients(principal: Principal) -> list[Participant]:
    """The clients this caller may see, by name (at most MAX_LIST)."""
    return await visibility_store.list_visible_clients(
        principal.practice_id, _limited_to(principal), MAX_LIST
    )


async def visible_client(principal: Principal, client_id: int) -> Participant:
    found = None
    if is_id(client_id):
        found = await visibility_store.get_visible_client(
            principal.practice_id, _limited_to(principal), client_id
        )
    if found is None:
        raise NotFound("client")
    return found
