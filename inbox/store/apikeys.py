"""The practice's API keys (R29): `auth_token` rows of kind `api_key`, with no participant.

How many a practice may hold, and which scopes they carry, is the domain's (`inbox.apikeys`).
"""

from __future__ import annotations

from datetime import datetime

from inbox.models import AuthToken


async def add_api_key(
    practice_id: int, *, token_hash: str, name: str, scopes: str, created_at: datetime
) -> AuthToken:
    """A new key of the practice (`scopes`: comma-separated)."""
    return await AuthToken.create(
        token_hash=token_hash,
        kind="api_key",
        practice_id=practice_id,
        name=name,
        scopes=scopes,
        created_at=created_at,
    )


async def get_live_key_count(practice_id: int) -> int:
    """How many of the practice's keys are not revoked."""
    return await AuthToken.filter(practice_id=practice_id, kind="api_key", revoked_at=None).count()


async def list_keys(practice_id: int) -> list[AuthToken]:
    """The practice's keys, revoked ones too, oldest first."""
    return list(await AuthToken.filter(practice_id=practice_id, kind="api_key").order_by("id"))


async def get_key(practice_id: int, key_id: int) -> AuthToken | None:
    return await AuthToken.filter(id=key_id, practice_id=practice_id, kind="api_key").first()


async def set_revoked(key_id: int, now: datetime) -> None:
    """Revoke the key, unless it is revoked already."""
    await AuthToken.filter(id=key_id, revoked_at=None).update(revoked_at=now)


async def set_last_used(token_id: int, now: datetime) -> None:
    await AuthToken.filter(id=token_id).update(last_used_at=now)
