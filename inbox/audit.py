"""The audit log (R24): append-only rows, hash-chained per practice, so an edit or a deletion shows.

Each row's `hash` is SHA-256 over the previous row's hash followed by the canonical JSON of the row's own
fields (sorted keys, no spaces, UTC times with microseconds). Rows are numbered 1, 2, 3, … per practice
(`seq`, unique per practice): the next number is read and the insert simply retried when another writer
took it first, so concurrent writers on several processes never fork the chain.

What the chain catches: a changed field (the row's hash no longer matches), a row recomputed after an edit
(the next row's prev_hash no longer matches), a deleted row (a gap in seq). What it cannot catch on its own:
dropping the newest rows, or rewriting the whole chain from some row on; `securemsg audit verify` prints each
practice's head hash so that an operator can keep it somewhere else and compare.

Rows never hold message text or names: only ids, action names, field names and flags.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from inbox.accounts import Principal
from inbox.context import InboxContext
from inbox.errors import Invalid
from inbox.ids import id_from_text
from inbox.messaging import ids_of
from inbox.models import TEAM, AuditEvent, Participant

GENESIS = "0" * 64
MAX_DETAIL_BYTES = 4000
_INSERT_TRIES = 200


@dataclass(frozen=True)
class Actor:
    id: int | None
    kind: str  # team | client | contact | api_key | system | anonymous


SYSTEM = Actor(None, "system")


def actor_of(who: Participant | Principal | Actor | None) -> Actor:
    if who is None:
        return SYSTEM
    if isinstance(who, Actor):
        return who
    if isinstance(who, Principal):
        if who.participant is None:
            return Actor(None, "api_key")
        who = who.participant
    return Actor(who.id, who.kind)


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def row_fields(row: AuditEvent) -> dict[str, Any]:
    """The fields the hash covers, in a form that survives a round trip through either database."""
    return {
        "practice_id": row.practice_id,
        "seq": row.seq,
        "at": _utc(row.at),
        "actor_id": row.actor_id,
        "actor_kind": row.actor_kind,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "detail": row.detail,
        "ip": row.ip,
    }


def canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(fields)).hexdigest()


def _check_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """Details are small and plain: ids, flags, counts, field names (never message text)."""

    def plain(value: Any) -> bool:
        if value is None or isinstance(value, bool | int | str):
            return True
        if isinstance(value, list):
            return all(plain(v) for v in value)
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return False  # floats and other types do not round-trip exactly through jsonb

    if not plain(detail):
        raise ValueError("audit detail holds only strings, whole numbers, flags, lists and objects")
    if len(canonical(detail)) > MAX_DETAIL_BYTES:
        raise ValueError("audit detail is too large")
    return detail


async def record(
    ctx: InboxContext,
    practice_id: int,
    actor: Participant | Principal | Actor | None,
    action: str,
    target_type: str | None = None,
    target_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one row to the practice's chain. Call it after the change it records has committed."""
    who = actor_of(actor)
    detail = _check_detail(dict(detail or {}))
    at = ctx.clock.now()
    for attempt in range(_INSERT_TRIES):
        last = await AuditEvent.filter(practice_id=practice_id).order_by("-seq").first()
        prev_hash, seq = (last.hash, last.seq + 1) if last is not None else (GENESIS, 1)
        row = AuditEvent(
            practice_id=practice_id,
            seq=seq,
            at=at,
            actor_id=who.id,
            actor_kind=who.kind,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            detail=detail,
            ip=ip[:64] if ip else None,
            prev_hash=prev_hash,
            hash="",
        )
        row.hash = chain_hash(prev_hash, row_fields(row))
        try:
            await row.save()
            return row
        except IntegrityError:
            # Another writer took this seq a moment ago: read the new head and chain onto it.
            await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
    raise RuntimeError(f"could not append to the audit log of practice {practice_id}")


async def record_sign_in(
    ctx: InboxContext, email: str, member: Participant | None, failure: str | None, ip: str | None
) -> AuditEvent | None:
    """A team sign-in, successful or not. A failure is recorded in the chain of every practice where the
    address has a team account (addresses are unique per practice only); a failure for an address no team
    member has belongs to no practice's chain, so it is not recorded here (the per-IP rate limit still
    counts it)."""
    if failure is None and member is not None:
        return await record(ctx, member.practice_id, member, "auth.login", "participant", member.id, ip=ip)
    accounts = (
        [member]
        if member is not None
        else await Participant.filter(kind=TEAM, email=email.strip().lower()[:254]).order_by("id")
    )
    row = None
    for account in accounts:
        row = await record(
            ctx,
            account.practice_id,
            Actor(None, "anonymous"),
            "auth.login_failed",
            "participant",
            account.id,
            {"reason": failure},
            ip,
        )
    return row


# --- reading ------------------------------------------------------------------------------------------


def event_json(row: AuditEvent) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": _utc(row.at).replace("+00:00", "Z"),
        "actor_id": row.actor_id,
        "actor_kind": row.actor_kind,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "detail": row.detail,
        "ip": row.ip,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def parse_since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        # In UTC, as stored: a time zone must not push 0001-01-01 or 9999-12-31 past what a date can be.
        at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise Invalid(
            "invalid_since", "since must be a date or time such as 2026-01-05T09:00:00Z.", field="since"
        ) from None
    return at


def parse_cursor(raw: str | None) -> int:
    if not raw:
        return 0
    value = id_from_text(raw)  # seq is a 32-bit column, like the ids
    if value is None:
        raise Invalid("invalid_cursor", "cursor is not one this server gave out.", field="cursor")
    return value


async def list_events(
    practice_id: int, since: datetime | None, after_seq: int, limit: int = 100
) -> dict[str, Any]:
    """Oldest first from `since` (or the start), paged by seq."""
    query = AuditEvent.filter(practice_id=practice_id, seq__gt=after_seq)
    if since is not None:
        query = query.filter(at__gte=since)
    rows = list(await query.order_by("seq").limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [event_json(r) for r in rows],
        "next_cursor": str(rows[-1].seq) if more and rows else None,
    }


# --- verifying ----------------------------------------------------------------------------------------


@dataclass
class ChainReport:
    practice_id: int
    rows: int = 0
    head: str = GENESIS
    bad_row_id: int | None = None
    bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


async def _rows(practice_id: int, page: int = 1000) -> AsyncIterator[AuditEvent]:
    after = 0
    while True:
        rows = list(
            await AuditEvent.filter(practice_id=practice_id, seq__gt=after).order_by("seq").limit(page)
        )
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1].seq


async def verify_chain(practice_id: int) -> ChainReport:
    """Walk one practice's chain in order and stop at the first row that does not hold."""
    report = ChainReport(practice_id)
    expected_seq, prev = 1, GENESIS
    async for row in _rows(practice_id):
        problem = None
        if row.seq != expected_seq:
            problem = (
                f"row seq {expected_seq} is missing (deleted); the chain continues at seq {row.seq}"
                if row.seq > expected_seq
                else f"seq {row.seq} is out of order"
            )
        elif not hmac.compare_digest(row.prev_hash, prev):
            problem = f"its prev_hash is not the hash of row seq {row.seq - 1} (one of them was changed)"
        elif not hmac.compare_digest(row.hash, chain_hash(row.prev_hash, row_fields(row))):
            problem = "its hash does not match its contents (the row was changed)"
        if problem is not None:
            report.bad_row_id, report.bad_seq, report.problem = row.id, row.seq, problem
            return report
        report.rows += 1
        report.head = row.hash
        expected_seq, prev = row.seq + 1, row.hash
    return report


async def practices_with_events() -> list[int]:
    return await ids_of(AuditEvent.all().distinct().order_by("practice_id"), "practice_id")


async def verify(practice_id: int | None = None) -> list[ChainReport]:
    ids = [practice_id] if practice_id is not None else await practices_with_events()
    return [await verify_chain(pid) for pid in ids]
