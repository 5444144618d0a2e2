"""The audit log (`audit_event`, R24): the shape of a send's row, which the send path writes with its own
prepared SQL (`inbox.store.messages`); writing, sealing, reading and purging rows (the chain's rules are
`inbox.audit`'s: these only fetch and store what it decides)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient

from inbox.models import TEAM, AuditEvent, Participant
from inbox.store import sql
from inbox.store.orm import ids_of


class SendRow(NamedTuple):
    """A send's audit row as plain values, in the send path's column order: building a model instance would
    cost the hot path more than the insert. `inbox.audit.send_row` fills it in (with its mac)."""

    practice_id: int
    at: datetime
    actor_id: int
    actor_kind: str
    action: str
    target_type: str
    detail: dict[str, Any]
    ip: str | None
    mac: str
    key_id: str


@dataclass
class Unsealed:
    """An unsealed row as the sealer reads it: raw columns, not a model instance (a seal pass reads a
    row per send, and Tortoise's instances would cost more than the rest of the pass)."""

    id: int
    practice_id: int
    at: datetime
    actor_id: int | None
    actor_kind: str
    action: str
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any]
    ip: str | None
    mac: str | None
    key_id: str | None
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None


class SentMessage(NamedTuple):
    """What a send's row is checked against when it is sealed: who sent the message, where, and when."""

    sender_id: int
    conversation_id: int
    created_at: datetime | None


# --- writing ------------------------------------------------------------------------------------------


async def add_event(row: AuditEvent, conn: BaseDBAsyncClient | None = None) -> bool:
    """Write the row through `conn` (or the connection the caller would use now: a transaction's, inside
    one); whether that connection is a transaction's (the row commits with it, and is sealed after)."""
    conn = conn or sql.client()
    await row.save(using_db=conn)
    return isinstance(conn, TransactionalDBClient)


async def refresh_seal(row: AuditEvent) -> None:
    """The row's place in the chain (`seq`, `prev_hash`, `hash`), as stored now."""
    await row.refresh_from_db(fields=["seq", "prev_hash", "hash"])


async def has_event_since(actor_id: int | None, target_id: str, action: str, since: datetime) -> bool:
    """Whether this actor (None: none) has a row of this action on this target at or after `since`."""
    return await AuditEvent.filter(
        actor_id=actor_id, target_id=target_id, action=action, at__gte=since
    ).exists()


async def list_team_accounts(email: str) -> list[Participant]:
    """The team accounts with this (normalised) address, in every practice, by id."""
    return list(await Participant.filter(kind=TEAM, email=email).order_by("id"))


# --- sealing ------------------------------------------------------------------------------------------

_LOCK_SPACE = 0x5EA1  # PostgreSQL advisory locks: (this, practice id) is a practice's chain
_SEAL_SQL = "UPDATE audit_event SET seq = ?, prev_hash = ?, hash = ? WHERE id = ?"
_UNSEALED_SQL = (
    "SELECT id, practice_id, at, actor_id, actor_kind, action, target_type, target_id, detail, ip, mac, "
    "key_id FROM audit_event WHERE practice_id = ? AND seq IS NULL ORDER BY id LIMIT ?"
)


async def lock_chain(conn: BaseDBAsyncClient, practice_id: int) -> None:
    """The practice's chain lock for the rest of the transaction: an advisory lock on PostgreSQL; nothing on
    SQLite, whose one writer at a time is lock enough."""
    if sql.is_postgres(conn):
        await conn.execute_query("SELECT pg_advisory_xact_lock($1, $2)", [_LOCK_SPACE, practice_id])


async def list_unsealed(
    practice_id: int, limit: int, conn: BaseDBAsyncClient | None = None
) -> list[Unsealed]:
    """The practice's oldest rows not in its chain yet (by id), at most `limit`, through `conn` (or the
    connection the caller would use now)."""
    conn = conn or sql.client()
    query = sql.pg_sql(_UNSEALED_SQL) if sql.is_postgres(conn) else _UNSEALED_SQL
    found = []
    for r in await conn.execute_query_dict(query, [practice_id, limit]):
        r["at"] = sql.to_datetime(r["at"])
        r["detail"] = sql.python_value(AuditEvent, "detail", r["detail"])
        found.append(Unsealed(**r))
    return found


async def get_sent_messages(
    ids: Sequence[int], conn: BaseDBAsyncClient | None = None
) -> dict[int, SentMessage]:
    """These messages (at least one id) by id, as far as a send's row names them."""
    conn = conn or sql.client()
    query = (
        "SELECT id, sender_id, conversation_id, created_at FROM message "  # noqa: S608
        f"WHERE id IN ({sql.marks(len(ids))})"
    )
    return {
        int(m["id"]): SentMessage(m["sender_id"], m["conversation_id"], sql.to_datetime(m["created_at"]))
        for m in await conn.execute_query_dict(
            sql.pg_sql(query) if sql.is_postgres(conn) else query, list(ids)
        )
    }


def _sealed(practice_id: int) -> Any:
    return AuditEvent.filter(practice_id=practice_id, seq__isnull=False)


async def get_last_sealed(practice_id: int, conn: BaseDBAsyncClient | None = None) -> AuditEvent | None:
    """The head of the practice's chain (its highest seq), through `conn` when given; None when empty."""
    query = _sealed(practice_id)
    if conn is not None:
        query = query.using_db(conn)
    return await query.order_by("-seq").first()


async def set_seals(conn: BaseDBAsyncClient, seals: list[list[Any]]) -> None:
    """Put rows into the chain: `[seq, prev_hash, hash, id]` each, in one statement (a seal holds SQLite's
    one connection as briefly as it can)."""
    query = _SEAL_SQL if not sql.is_postgres(conn) else sql.pg_sql(_SEAL_SQL)
    await conn.execute_many(query, seals)


async def list_practices_with_unsealed() -> list[int]:
    return await ids_of(AuditEvent.filter(seq__isnull=True).distinct().order_by("practice_id"), "practice_id")


async def list_practices_with_events() -> list[int]:
    return await ids_of(AuditEvent.all().distinct().order_by("practice_id"), "practice_id")


# --- reading ------------------------------------------------------------------------------------------


async def list_events_after(
    practice_id: int, after_seq: int, limit: int, since: datetime | None = None
) -> list[AuditEvent]:
    """The practice's sealed rows after `after_seq` (from `since`, when given), oldest first, at most
    `limit`."""
    query = AuditEvent.filter(practice_id=practice_id, seq__gt=after_seq)
    if since is not None:
        query = query.filter(at__gte=since)
    return list(await query.order_by("seq").limit(limit))


async def list_filtered_events(
    practice_id: int,
    cursor: int,
    *,
    newest: bool,
    since: datetime | None,
    until: datetime | None,
    actor_id: int | None,
    action: str | None,
    limit: int,
) -> list[AuditEvent]:
    """The practice's sealed rows past the seq `cursor` (0: from the start), oldest first or `newest` first:
    from `since`, before `until`, by this actor, of this action (every action of a family when it ends in
    "."), at most `limit`."""
    query = AuditEvent.filter(practice_id=practice_id, seq__isnull=False)
    if cursor:
        query = query.filter(seq__lt=cursor) if newest else query.filter(seq__gt=cursor)
    if since is not None:
        query = query.filter(at__gte=since)
    if until is not None:
        query = query.filter(at__lt=until)
    if actor_id is not None:
        query = query.filter(actor_id=actor_id)
    if action:
        query = (
            query.filter(action__startswith=action) if action.endswith(".") else query.filter(action=action)
        )
    return list(await query.order_by("-seq" if newest else "seq").limit(limit))


async def list_actions(practice_id: int) -> list[str]:
    """The actions the practice's log holds, alphabetically, each once."""
    rows: list[Any] = (
        await AuditEvent.filter(practice_id=practice_id)
        .distinct()
        .order_by("action")
        .values_list("action", flat=True)
    )
    return [str(r) for r in rows]


async def list_sealed_of_action(practice_id: int, action: str) -> list[AuditEvent]:
    """The practice's sealed rows of this action."""
    return list(await AuditEvent.filter(practice_id=practice_id, action=action, seq__isnull=False))


# --- purging the chain's start (inbox.purge) ------------------------------------------------------------


async def get_first_sealed(practice_id: int, since: datetime | None = None) -> AuditEvent | None:
    """The practice's first sealed row (at or after `since`, when given), or None."""
    query = _sealed(practice_id)
    if since is not None:
        query = query.filter(at__gte=since)
    return await query.order_by("seq").first()


async def get_sealed(practice_id: int, seq: int) -> AuditEvent | None:
    """The practice's row at this seq, or None."""
    return await _sealed(practice_id).filter(seq=seq).first()


async def delete_sealed(conn: BaseDBAsyncClient, practice_id: int, from_seq: int, through_seq: int) -> int:
    """Delete the practice's rows from `from_seq` through `through_seq`; how many went."""
    return await (
        AuditEvent.filter(practice_id=practice_id, seq__gte=from_seq, seq__lte=through_seq)
        .using_db(conn)
        .delete()
    )
