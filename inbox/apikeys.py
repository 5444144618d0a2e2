"""Keys for the practice's other systems (R29): named, scoped, listed and revoked by the account owner.

A key is an `AuthToken` of kind `api_key` with no participant: only a keyed hash of it is stored (HMAC with
the server secret, like bearer tokens), so the key itself is shown once, when it is made, and never again.

Scopes:
- `integration`: appointment events and webhooks (docs/api.md §3, Integration);
- `provisioning`: people, settings and access (docs/api.md §3, Provisioning) — but never a password of an
  existing account and never the account owner's role (inbox.accounts.check_team_change).
A call whose scope the key lacks is refused with 403 `key_scope`. Revoking sets `revoked_at`, which every
token lookup checks, so the next request with that key is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from inbox.context import InboxContext
from inbox.errors import Forbidden, Invalid, NotFound
from inbox.ids import is_id
from inbox.models import AuthToken
from inbox.store import apikeys as keys
from portal_links import hash_token, new_token

if TYPE_CHECKING:
    from inbox.accounts import Principal

API_KEY_PREFIX = "smk_"
INTEGRATION, PROVISIONING = "integration", "provisioning"
SCOPES = (INTEGRATION, PROVISIONING)
MAX_NAME = 100
MAX_KEYS_PER_PRACTICE = 50
# last_used_at is a hint for the owner ("is this key still in use?"), not an audit trail: written at most
# once a minute per key, so a busy integration does not turn every call into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def check_scopes(scopes: Sequence[Any]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise Invalid(
            "invalid_scopes", f"scopes must be a non-empty list from: {', '.join(SCOPES)}.", field="scopes"
        )
    return tuple(s for s in SCOPES if s in scopes)


def check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME or any(ord(c) < 32 for c in name):
        raise Invalid("invalid_name", f"name must be 1 to {MAX_NAME} characters.", field="name")
    return name


def scopes_of(row: AuthToken) -> list[str]:
    return [s for s in (row.scopes or "").split(",") if s]


def key_json(row: AuthToken) -> dict[str, Any]:
    def iso(at: Any) -> str | None:
        return at.isoformat().replace("+00:00", "Z") if at else None

    return {
        "id": row.id,
        "name": row.name or "",
        "scopes": scopes_of(row),
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "revoked_at": iso(row.revoked_at),
    }


async def issue(
    ctx: InboxContext, practice_id: int, name: str, scopes: Sequence[str]
) -> tuple[AuthToken, str]:
    """A new key (shown once: the caller gives it to whoever asked) and its row."""
    key = API_KEY_PREFIX + new_token()
    row = await keys.add_api_key(
        practice_id,
        token_hash=hash_token(key, ctx.secret),
        name=name,
        scopes=",".join(check_scopes(scopes)),
        created_at=ctx.clock.now(),
    )
    return row, key


async def create(
    ctx: InboxContext, practice_id: int, name: str, scopes: Sequence[Any]
) -> tuple[AuthToken, str]:
    chosen = check_scopes(scopes)
    name = check_name(name)
    live = await keys.get_live_key_count(practice_id)
    if live >= MAX_KEYS_PER_PRACTICE:
        raise Invalid(
            "too_many_api_keys",
            f"A practice may have at most {MAX_KEYS_PER_PRACTICE} keys; revoke one first.",
        )
    return await issue(ctx, practice_id, name, chosen)


async def list_keys(practice_id: int) -> list[AuthToken]:
    return await keys.list_keys(practice_id)


async def revoke(ctx: InboxContext, practice_id: int, key_id: int) -> AuthToken:
    """Revoke at once; revoking a revoked key again changes nothing."""
    row = None
    if is_id(key_id):
        row = await keys.get_key(practice_id, key_id)
    if row is None:
        raise NotFound("API key")
    if row.revoked_at is None:
        now = ctx.clock.now()
        await keys.set_revoked(row.id, now)
        row.revoked_at = now
    return row


def require_scope(principal: Principal, scope: str) -> None:
    """People's tokens pass (their roles decide); an API key needs `scope`."""
    if principal.is_api_key and scope not in principal.scopes:
        raise Forbidden("key_scope", f"This API key does not have the {scope} scope.", rule="R29")


async def note_use(ctx: InboxContext, principal: Principal) -> None:
    now = ctx.clock.now()
    last = principal.last_used_at
    if principal.is_api_key and (last is None or now - last >= LAST_USED_RESOLUTION):
        await keys.set_last_used(principal.token_id, now)
        principal.last_used_at = now
