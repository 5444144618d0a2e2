"""Ending people's access (R4, R25, R26, R27): their tokens (`auth_token`) and links (`link_token`) revoked,
the devices (`device`) the ended tokens registered forgotten, their credential epoch raised.

Whose access ends, and when, is the domain's (`inbox.access`, `inbox.accounts`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from tortoise.expressions import F

from inbox.models import AuthToken, Device, LinkToken, Participant
from inbox.store.orm import ids_of


async def end_access(
    participant_id: int, now: datetime, *, keep_token_id: int | None = None, all_devices: bool = False
) -> list[int]:
    """Revoke every live token of the participant but `keep_token_id`, delete the devices those tokens
    registered (every device of theirs, with `all_devices`), revoke their live links and raise their
    credential epoch by one. The ids of the tokens revoked."""
    tokens = AuthToken.filter(participant_id=participant_id, revoked_at=None)
    if keep_token_id is not None:
        tokens = tokens.exclude(id=keep_token_id)
    ended = await ids_of(tokens, "id")
    if ended:
        await AuthToken.filter(id__in=ended).update(revoked_at=now)
    if all_devices:
        await Device.filter(participant_id=participant_id).delete()
    elif ended:
        await Device.filter(participant_id=participant_id, auth_token_id__in=ended).delete()
    await LinkToken.filter(participant_id=participant_id, revoked_at=None).update(revoked_at=now)
    await Participant.filter(id=participant_id).update(credential_epoch=F("credential_epoch") + 1)
    return ended


async def revoke_links_and_tokens(participant_ids: Collection[int], now: datetime) -> None:
    """Revoke every live link, then every live token, of these participants."""
    await LinkToken.filter(participant_id__in=participant_ids, revoked_at=None).update(revoked_at=now)
    await AuthToken.filter(participant_id__in=participant_ids, revoked_at=None).update(revoked_at=now)


async def revoke_token(token_id: int, now: datetime) -> None:
    """Sign-out: revoke the token and delete the devices it registered."""
    await AuthToken.filter(id=token_id).update(revoked_at=now)
    await Device.filter(auth_token_id=token_id).delete()
