"""Sign-ins with an OpenID Connect provider: the attempts under way (`oidc_attempt`) and the provider accounts
people linked from the portal (`oidc_identity`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from inbox.models import OidcAttempt, OidcIdentity
from inbox.store.orm import ids_of

# --- attempts ------------------------------------------------------------------------------------------


async def delete_attempts_expired_before(cutoff: datetime) -> None:
    await OidcAttempt.filter(expires_at__lt=cutoff).delete()


async def add_attempt(
    state_hash: str,
    browser_hash: str,
    purpose: str,
    participant_id: int | None,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    await OidcAttempt.create(
        state_hash=state_hash,
        browser_hash=browser_hash,
        purpose=purpose,
        participant_id=participant_id,
        created_at=created_at,
        expires_at=expires_at,
    )


async def get_attempt(state_hash: str) -> OidcAttempt | None:
    return await OidcAttempt.get_or_none(state_hash=state_hash)


async def set_attempt_used(attempt_id: int, at: datetime) -> bool:
    """Mark the attempt used unless it is already: whether this call did (of two, one does)."""
    return await OidcAttempt.filter(id=attempt_id, used_at=None).update(used_at=at) == 1


async def set_attempt_candidates(attempt: OidcAttempt, participant_ids: list[int]) -> None:
    """The people the attempt matched, from whom the "which practice?" page picks one."""
    attempt.candidates = participant_ids
    await attempt.save(update_fields=["candidates"])


async def set_attempt_chosen(attempt_id: int, at: datetime) -> bool:
    """Mark the attempt's choice made unless it is already: whether this call did (of two, one does)."""
    return await OidcAttempt.filter(id=attempt_id, chosen_at=None).update(chosen_at=at) == 1


# --- linked accounts ------------------------------------------------------------------------------------


async def get_linked_ids(issuer: str, subject: str) -> list[int]:
    """The people who linked this provider account."""
    return await ids_of(OidcIdentity.filter(issuer=issuer, subject=subject), "participant_id")


async def get_ids_linked_at(participant_ids: Sequence[int], issuer: str) -> list[int]:
    """Those of these people who linked an account (any) at this provider."""
    return await ids_of(
        OidcIdentity.filter(participant_id__in=list(participant_ids), issuer=issuer), "participant_id"
    )


async def get_identity(participant_id: int, issuer: str) -> OidcIdentity | None:
    return await OidcIdentity.get_or_none(participant_id=participant_id, issuer=issuer)


async def set_identity(participant_id: int, issuer: str, subject: str, linked_at: datetime) -> None:
    """Link this person to this account at the provider, in place of the one they had linked there, if any."""
    changed = await OidcIdentity.filter(participant_id=participant_id, issuer=issuer).update(
        subject=subject, linked_at=linked_at
    )
    if changed:
        return
    try:
        async with in_transaction():  # a savepoint: inside the caller's transaction, a refused insert
            await OidcIdentity.create(  # must not abort it (PostgreSQL)
                participant_id=participant_id, issuer=issuer, subject=subject, linked_at=linked_at
            )
    except IntegrityError:  # linked by a concurrent request a moment ago: this one's account wins
        await OidcIdentity.filter(participant_id=participant_id, issuer=issuer).update(
            subject=subject, linked_at=linked_at
        )


async def delete_identity(participant_id: int, issuer: str) -> bool:
    """Unlink; whether there was a link."""
    return await OidcIdentity.filter(participant_id=participant_id, issuer=issuer).delete() > 0
