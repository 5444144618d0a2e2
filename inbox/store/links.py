"""Links in emails (`link_token`): Instant Sign In and conversation links, and the team's password reset and
invitation links. Which purposes there are, how long a link lives and whether one still works is the
domain's (`inbox.links`, `inbox.passwords`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from inbox.models import LinkToken


async def add_link(
    token_hash: str,
    purpose: str,
    participant_id: int,
    conversation_id: int | None,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    await LinkToken.create(
        token_hash=token_hash,
        purpose=purpose,
        participant_id=participant_id,
        conversation_id=conversation_id,
        created_at=created_at,
        expires_at=expires_at,
    )


async def get_link(token_hash: str) -> LinkToken | None:
    """The link with this hash, whatever its state."""
    return await LinkToken.filter(token_hash=token_hash).first()


async def set_live_links_revoked(participant_id: int, purposes: Collection[str], at: datetime) -> None:
    """Revoke this person's links of these purposes that are neither used nor revoked yet."""
    await LinkToken.filter(
        participant_id=participant_id, purpose__in=list(purposes), used_at=None, revoked_at=None
    ).update(revoked_at=at)


async def set_link_used(link_id: int, at: datetime) -> bool:
    """Mark the link used if it is still live (not used, not revoked, not expired at `at`): whether this call
    did (of two concurrent calls, one does)."""
    changed = await LinkToken.filter(id=link_id, used_at=None, revoked_at=None, expires_at__gt=at).update(
        used_at=at
    )
    return changed == 1


async def set_links_revoked(participant_ids: list[int], at: datetime) -> int:
    """Revoke every link of these people not revoked yet; how many."""
    return await LinkToken.filter(participant_id__in=participant_ids, revoked_at=None).update(revoked_at=at)
