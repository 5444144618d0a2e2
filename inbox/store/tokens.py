"""Bearer tokens and session cookies (`auth_token`): the lookups every request makes, in prepared SQL, and
the rows sign-in and sign-out write.

The domain (`inbox.accounts`) judges the rows (expired, deactivated, R27); these only fetch them. The
practice's API keys are `auth_token` rows too: `inbox.store.apikeys`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from inbox.models import AuthToken, Participant
from inbox.store import sql

# The token's columns, as `t_…`, for a query on `auth_token t` (here, and `inbox.store.messages`, which asks
# for the caller and the conversation together).
CALLER_COLUMNS = (
    "t.id AS t_id, t.kind AS t_kind, t.practice_id AS t_practice_id, t.participant_id AS t_participant_id, "
    "t.csrf_token AS t_csrf_token, t.expires_at AS t_expires_at, t.scopes AS t_scopes, "
    "t.last_used_at AS t_last_used_at"
)


@cache
def _token_sql() -> str:
    # Every request asks this: one prepared query (see inbox.store.sql) instead of two built by the ORM.
    return (
        f"SELECT {CALLER_COLUMNS}, {sql.columns(Participant, 'p')} FROM auth_token t "  # noqa: S608
        "LEFT JOIN participant p ON p.id = t.participant_id WHERE t.token_hash = ? AND t.revoked_at IS NULL"
    )


async def get_caller_row(token_hash: str) -> dict[str, Any] | None:
    """The live (not revoked) token with this hash and its participant's columns, in one row, or None."""
    rows = await sql.fetch(_token_sql(), (token_hash,))
    return rows[0] if rows else None


@cache
def _ended_sql(n: int) -> str:
    # Only the columns `token_expired` and `takes_part` read: a process may hold ten thousand sockets, and
    # on SQLite this read runs in the event loop's thread (inbox.store.sql), so every column per row counts.
    return (
        "SELECT t.id, t.expires_at, p.kind, p.active, p.messaging_enabled, p.portal_access, "  # noqa: S608
        "c.messaging_enabled AS c_messaging_enabled, c.portal_access AS c_portal_access FROM auth_token t "
        "JOIN participant p ON p.id = t.participant_id "
        "LEFT JOIN participant c ON c.id = p.client_id AND c.practice_id = p.practice_id "
        f"WHERE t.id IN ({sql.marks(n)}) AND t.revoked_at IS NULL"
    )


async def get_standing_rows(token_ids: Sequence[int]) -> list[dict[str, Any]]:
    """For these token ids (at least one), the live ones with what `accounts.takes_part` reads of their
    participant and of a contact's client (`c_…`)."""
    # Padded to a power of two with its last id, so few distinct statements are ever prepared.
    ids = list(token_ids)
    size = 1 << (len(ids) - 1).bit_length()
    return await sql.fetch(_ended_sql(size), ids + ids[-1:] * (size - len(ids)))


def participant_from_row(row: Mapping[str, Any]) -> Participant | None:
    """The token's participant from a caller row, or None when it is gone."""
    if row.get("id") is None:
        return None
    return sql.model_from_row(Participant, row)


def as_datetime(value: Any) -> datetime | None:
    """A stored timestamp (a datetime, or SQLite's text) as an aware UTC datetime."""
    return sql.to_datetime(value)


async def add_token(
    participant: Participant,
    *,
    token_hash: str,
    kind: str,
    csrf_token: str | None,
    created_at: datetime,
    expires_at: datetime,
) -> AuthToken:
    """A new token of the participant (a session, or an app's bearer token), at their practice."""
    return await AuthToken.create(
        token_hash=token_hash,
        kind=kind,
        practice_id=participant.practice_id,
        participant=participant,
        csrf_token=csrf_token,
        created_at=created_at,
        expires_at=expires_at,
    )


async def revoke_session(token_hash: str, now: datetime) -> None:
    """Revoke the live session (not another kind of token) with this hash, if there is one."""
    await AuthToken.filter(token_hash=token_hash, kind="session", revoked_at=None).update(revoked_at=now)
