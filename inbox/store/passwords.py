"""Password links (`link_token` rows of the purposes `reset` and `invite`) and the reset requests' email
jobs (`outbox_job`).

Which purposes there are, how long a link lives and whether one still works is the domain's
(`inbox.passwords`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from inbox.models import LinkToken, OutboxJob


async def add_email_jobs(jobs: Sequence[OutboxJob]) -> None:
    """Insert these (unsaved) outbox rows, in one statement."""
    await OutboxJob.bulk_create(jobs)


async def revoke_links(participant_id: int, purposes: Collection[str], now: datetime) -> None:
    """Revoke the participant's links of these purposes that are neither used nor revoked yet."""
    await LinkToken.filter(
        participant_id=participant_id, purpose__in=purposes, used_at=None, revoked_at=None
    ).update(revoked_at=now)


async def add_link(
    participant_id: int, *, token_hash: str, purpose: str, created_at: datetime, expires_at: datetime
) -> LinkToken:
    return await LinkToken.create(
        token_hash=token_hash,
        purpose=purpose,
        participant_id=participant_id,
        created_at=created_at,
        expires_at=expires_at,
    )


async def get_link(token_hash: str) -> LinkToken | None:
    """The link with this hash, whatever its purpose or state."""
    return await LinkToken.filter(token_hash=token_hash).first()


async def set_link_used(link_id: int, now: datetime) -> int:
    """Use the link up, if it is still unused, unrevoked and unexpired at `now`. How many rows changed: 1,
    or 0 when another request used it first (or it is no longer live)."""
    return await LinkToken.filter(id=link_id, used_at=None, revoked_at=None, expires_at__gt=now).update(
        used_at=now
    )
