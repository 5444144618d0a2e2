"""The audit log (R24): append-only rows, chained per practice under a key the database never holds, so an
edit, an insertion or a deletion shows, even one made by someone who can write to the database.

A row is written in the same transaction as the change it records (pass `conn`, or call `record` inside
`db.transaction()`; the send path writes its row in the group commit), so a crash or a database error
between the two cannot keep the change and lose the row. It carries a `mac`: HMAC-SHA256, under the audit
key, over the canonical JSON of its own fields (sorted keys, no spaces, UTC times with microseconds).

Rows are then *sealed* into the practice's chain, in the order they are sealed: `seq` 1, 2, 3, … and
`hash` = HMAC-SHA256 over the previous row's hash, the row's seq, its mac and its target_id. A row written
outside a transaction is sealed at once; one written inside is sealed a moment after its commit
(`inbox.sealer`), by the periodic pass (gateway.auditing), or before the log is read or verified. Sealing
takes the practice's chain lock (PostgreSQL: an advisory lock for the transaction; the unique
(practice_id, seq) index stops any other race, and the seal is simply retried), and refuses a row whose mac
does not hold: a row someone slipped into the table never joins the chain.

A send's row is MACed before its message has an id (the send is one statement on PostgreSQL): its
target_id is left out of its mac, checked against the message itself (sender, conversation, time) when it
is sealed, and covered by the chain hash from then on.

The key lives in the var directory (`audit.key`, or SECUREMSG_AUDIT_KEY), never in the database: someone
who rewrites a row and recomputes the chain cannot make the keyed hashes match. Rows record the key's id
(`key_id`); rows from before the keyed scheme (key_id None) keep their unkeyed SHA-256 chain and still
verify, but only before the first keyed row: an unkeyed row after a keyed one is a rewrite.

A chain may start after seq 1 only where an operator purged its oldest rows (`securemsg purge-audit`,
inbox.purge): the purge writes an *anchor* row (`audit.purged`) into the chain, keyed like any other, naming
the last purged row's seq and hash. `verify_chain` accepts a missing start only when such an anchor covers it,
and checks that the row it names, while still there, has the hash it recorded.

What the chain cannot catch on its own: dropping the newest rows, or a rewrite of a chain that has no keyed
row at all yet (one untouched since before the upgrade); `securemsg audit verify` prints each practice's
head hash, and says when a chain is not keyed yet, so that an operator can keep them elsewhere and compare.

Rows never hold message text or names: only ids, action names, field names and flags.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from tortoise.exceptions import IntegrityError

from inbox import db
from inbox.accounts import Principal
from inbox.context import InboxContext
from inbox.errors import Invalid
from inbox.ids import id_from_text
from inbox.models import AuditEvent, Participant
from inbox.store import audit as store
from inbox.store.audit import SendRow, Unsealed

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient

log = logging.getLogger(__name__)

GENESIS = "0" * 64
MAX_DETAIL_BYTES = 4000
_SEAL_TRIES = 200
SEAL_BATCH = 1000
SEND = "message.send"  # a send's row: its mac leaves out the message id (see above)
PURGED = "audit.purged"  # an operator purged the chain's start: the anchor that lets it start later (below)
ACCESS_WINDOW = timedelta(hours=1)
THROTTLED = "rate_limited"  # a sign-in refused by the rate limits, before its password was looked at
THROTTLED_WINDOW = timedelta(minutes=1)


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


Row = AuditEvent | Unsealed  # a row as the sealer reads it (raw columns) or as a model


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def row_fields(row: Row) -> dict[str, Any]:
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


def mac_fields(row: Row) -> dict[str, Any]:
    """What a row's mac covers: its fields without its place in the chain (and a send's message id)."""
    fields = row_fields(row)
    del fields["seq"]
    if row.action == SEND:
        fields["target_id"] = None
    return fields


def canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """The unkeyed hash of rows written before the keyed scheme (key_id None)."""
    return hashlib.sha256(prev_hash.encode() + canonical(fields)).hexdigest()


def row_mac(key: bytes, row: Row) -> str:
    return _hmac(key, canonical(mac_fields(row)))


class Sender(Protocol):
    """What a send's row reads of its sender: a `Participant`, or the send's `Member` row."""

    @property
    def id(self) -> int: ...
    @property
    def practice_id(self) -> int: ...
    @property
    def kind(self) -> str: ...


def send_row(
    ctx: InboxContext, sender: Sender, conversation_id: int, at: datetime, ip: str | None
) -> SendRow:
    key_id, key = _current_key(ctx)
    detail = {"conversation_id": conversation_id}
    ip = ip[:64] if ip else None
    fields = {
        "practice_id": sender.practice_id,
        "at": _utc(at),
        "actor_id": sender.id,
        "actor_kind": sender.kind,
        "action": SEND,
        "target_type": "message",
        "target_id": None,  # the message has no id yet (see above)
        "detail": detail,
        "ip": ip,
    }
    mac = _hmac(key, canonical(fields))
    return SendRow(sender.practice_id, at, sender.id, sender.kind, SEND, "message", detail, ip, mac, key_id)


def link_hash(key: bytes, prev_hash: str, row: Row) -> str:
    """A sealed row's keyed hash: the previous hash, its seq, its mac (which covers its fields) and its
    target_id (which a send's mac leaves out)."""
    return _hmac(key, f"{prev_hash}|{row.seq}|{row.mac}|{row.target_id}".encode())


@lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def _hmac(key: bytes, message: bytes) -> str:
    """HMAC-SHA256, hex; the key's padding is worked out once per key, not per row."""
    h = _keyed(key).copy()
    h.update(message)
    return h.hexdigest()


def _current_key(ctx: InboxContext) -> tuple[str, bytes]:
    if not ctx.audit_keys:
        raise RuntimeError("no audit key: the audit log cannot be written (see SECUREMSG_AUDIT_KEY)")
    return ctx.audit_keys[0]


def _key(ctx: InboxContext, key_id: str | None) -> bytes | None:
    return next((k for kid, k in ctx.audit_keys if kid == key_id), None)


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


def new_row(
    ctx: InboxContext,
    practice_id: int,
    actor: Participant | Principal | Actor | None,
    action: str,
    target_type: str | None = None,
    target_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """An unsaved, unsealed row with its mac."""
    who = actor_of(actor)
    key_id, key = _current_key(ctx)
    row = AuditEvent(
        practice_id=practice_id,
        seq=None,
        at=at or ctx.clock.now(),
        actor_id=who.id,
        actor_kind=who.kind,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        detail=_check_detail(dict(detail or {})),
        ip=ip[:64] if ip else None,
        prev_hash=None,
        hash=None,
        key_id=key_id,
    )
    row.mac = row_mac(key, row)
    return row


async def record(
    ctx: InboxContext,
    practice_id: int,
    actor: Participant | Principal | Actor | None,
    action: str,
    target_type: str | None = None,
    target_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    *,
    conn: BaseDBAsyncClient | None = None,
) -> AuditEvent:
    """Append one row to the practice's log.

    Inside a transaction (`conn`, or a call within `db.transaction()`) the row is written in it, so it
    commits or rolls back with the change it records, and is sealed soon after the commit (the row returned
    is not sealed yet). Outside one it is written and sealed at once, and returned sealed."""
    row = new_row(ctx, practice_id, actor, action, target_type, target_id, detail, ip)
    if await store.add_event(row, conn):
        seal_soon(ctx, practice_id)
        return row
    await seal(ctx, practice_id)
    await store.refresh_seal(row)
    return row


def seal_soon(ctx: InboxContext, practice_id: int) -> None:
    """Rows of this practice were committed unsealed: seal them in a moment (inbox.sealer)."""
    ctx.sealer.wake(practice_id)


async def record_access(
    ctx: InboxContext,
    who: Participant,
    action: str,
    conversation_id: int,
    ip: str | None = None,
) -> AuditEvent | None:
    """A person opened a conversation (HIPAA: access to health information). One row per person per
    conversation per hour says who saw what and when well enough; a reload every few seconds adds none."""
    since = ctx.clock.now() - ACCESS_WINDOW
    if await store.has_event_since(who.id, str(conversation_id), action, since):
        return None
    return await record(ctx, who.practice_id, who, action, "conversation", conversation_id, None, ip)


async def record_sign_in(
    ctx: InboxContext, email: str, member: Participant | None, failure: str | None, ip: str | None
) -> AuditEvent | None:
    """A team sign-in, successful or not. A failure is recorded in the chain of every practice where the
    address has a team account (addresses are unique per practice only); a failure for an address no team
    member has belongs to no practice's chain, so it is not recorded here (the per-IP rate limit still
    counts it)."""
    if failure is None and member is not None:
        return await record(ctx, member.practice_id, member, "auth.login", "participant", member.id, ip=ip)
    accounts = [member] if member is not None else await store.list_team_accounts(email.strip().lower()[:254])
    action = "auth.login_failed"
    row = None
    for account in accounts:
        if failure == THROTTLED:
            # Someone hammering an address is refused many times a second: a row a minute says it well.
            action = "auth.login_throttled"
            since = ctx.clock.now() - THROTTLED_WINDOW
            if await store.has_event_since(None, str(account.id), action, since):
                continue
        row = await record(
            ctx,
            account.practice_id,
            Actor(None, "anonymous"),
            action,
            "participant",
            account.id,
            {"reason": failure},
            ip,
        )
    return row


# --- sealing ------------------------------------------------------------------------------------------


async def _send_targets_hold(rows: list[Unsealed], conn: BaseDBAsyncClient | None = None) -> set[int]:
    """The ids of send rows whose message is what the row says: that sender, conversation and time."""
    sends = [r for r in rows if r.action == SEND and r.target_id and r.target_id.isdigit()]
    if not sends:
        return set()
    found = await store.get_sent_messages([int(r.target_id or 0) for r in sends], conn)
    good = set()
    for r in sends:
        m = found.get(int(r.target_id or 0))
        if (
            m is not None
            and m.sender_id == r.actor_id
            and m.conversation_id == (r.detail or {}).get("conversation_id")
            and _utc(m.created_at or r.at) == _utc(r.at)
        ):
            good.add(r.id)
    return good


def _holds(ctx: InboxContext, row: Unsealed, sends_ok: set[int]) -> bytes | None:
    """The row's key when its mac (and, for a send, its message) holds; else None."""
    key = _key(ctx, row.key_id)
    if key is None or not hmac.compare_digest(row.mac or "", row_mac(key, row)):
        return None
    if row.action == SEND and row.id not in sends_ok:
        return None
    return key


async def _seal_batch(ctx: InboxContext, practice_id: int, conn: BaseDBAsyncClient) -> tuple[int, bool]:
    """Seal up to SEAL_BATCH rows in this transaction; (rows sealed, whether more may wait)."""
    await store.lock_chain(conn, practice_id)
    pending = await store.list_unsealed(practice_id, SEAL_BATCH, conn)
    if not pending:
        return 0, False
    last = await store.get_last_sealed(practice_id, conn)
    prev, seq = (last.hash or GENESIS, last.seq or 0) if last is not None else (GENESIS, 0)
    sends_ok = await _send_targets_hold(pending, conn)
    updates: list[list[Any]] = []
    for row in pending:
        key = _holds(ctx, row, sends_ok)
        if key is None:
            # Not written by securemsg (or by one without this key): it stays out of the chain, and
            # `audit verify` names it.
            log.warning("audit row id %s of practice %s does not verify; not sealed", row.id, practice_id)
            continue
        seq += 1
        row.seq, row.prev_hash = seq, prev
        row.hash = link_hash(key, prev, row)
        updates.append([row.seq, row.prev_hash, row.hash, row.id])
        prev = row.hash
    if updates:  # one statement for the batch: a seal holds SQLite's one connection as briefly as it can
        await store.set_seals(conn, updates)
    return len(updates), len(pending) == SEAL_BATCH


async def seal(ctx: InboxContext, practice_id: int) -> int:
    """Seal the practice's committed, unsealed rows into its chain; returns how many were sealed."""
    total = 0
    for attempt in range(_SEAL_TRIES):
        try:
            async with db.transaction() as conn:
                sealed, more = await _seal_batch(ctx, practice_id, conn)
        except IntegrityError:
            # Another process sealed onto the same head a moment ago: read the new head and go on.
            await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
            continue
        total += sealed
        if not more:
            return total
    raise RuntimeError(f"could not seal the audit log of practice {practice_id}")


async def practices_with_unsealed() -> list[int]:
    return await store.list_practices_with_unsealed()


async def seal_all(ctx: InboxContext) -> int:
    """Seal whatever any process left unsealed (it stopped between a commit and its seal)."""
    return sum([await seal(ctx, pid) for pid in await practices_with_unsealed()])


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
    practice_id: int,
    since: datetime | None,
    after_seq: int,
    limit: int = 100,
    *,
    ctx: InboxContext | None = None,
) -> dict[str, Any]:
    """Oldest first from `since` (or the start), paged by seq. With `ctx`, rows still waiting for their
    seal are sealed first, so the reader sees everything committed so far."""
    if ctx is not None:
        await seal(ctx, practice_id)
    rows = await store.list_events_after(practice_id, after_seq, limit + 1, since)
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
    keyed_rows: int = 0
    bad_row_id: int | None = None
    bad_seq: int | None = None
    problem: str | None = None
    purged_through: int | None = None  # rows up to this seq were purged by an operator (an anchor says so)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def unkeyed(self) -> bool:
        """Every row is from before the keyed scheme: nothing here is protected by the audit key yet."""
        return self.rows > 0 and self.keyed_rows == 0


async def _rows(practice_id: int, page: int = 1000) -> AsyncIterator[AuditEvent]:
    after = 0
    while True:
        rows = await store.list_events_after(practice_id, after, page)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1].seq or after


def _row_problem(ctx: InboxContext, row: AuditEvent, prev: str, keyed_before: bool) -> str | None:
    if not hmac.compare_digest(row.prev_hash or "", prev):
        return f"its prev_hash is not the hash of row seq {(row.seq or 0) - 1} (one of them was changed)"
    if row.key_id is None:
        if keyed_before:
            return "it is not keyed, yet keyed rows come before it (the chain was rewritten without the key)"
        if not hmac.compare_digest(row.hash or "", chain_hash(prev, row_fields(row))):
            return "its hash does not match its contents (the row was changed)"
        return None
    key = _key(ctx, row.key_id)
    if key is None:
        return f"it was keyed with audit key {row.key_id!r}, which this server does not have"
    if not hmac.compare_digest(row.mac or "", row_mac(key, row)):
        return "its hash does not match its contents (the row was changed)"
    if not hmac.compare_digest(row.hash or "", link_hash(key, prev, row)):
        return "its keyed hash does not hold (the chain was rewritten without the key)"
    return None


async def _anchors(ctx: InboxContext, practice_id: int) -> dict[int, str]:
    """seq → hash of the last row each purge of this chain took, from the anchors whose mac holds (a row
    slipped into the table without the key cannot vouch for a missing start)."""
    found: dict[int, str] = {}
    for row in await store.list_sealed_of_action(practice_id, PURGED):
        key = _key(ctx, row.key_id)
        if key is None or not hmac.compare_digest(row.mac or "", row_mac(key, row)):
            continue
        through, through_hash = (row.detail or {}).get("through_seq"), (row.detail or {}).get("through_hash")
        if isinstance(through, int) and isinstance(through_hash, str) and 0 < through < (row.seq or 0):
            found[through] = through_hash
    return found


async def verify_chain(ctx: InboxContext, practice_id: int) -> ChainReport:
    """Walk one practice's chain in order and stop at the first row that does not hold; then look at the
    rows left unsealed, which only a row securemsg did not write (or changed before its seal) can be."""
    report = ChainReport(practice_id)
    anchors = await _anchors(ctx, practice_id)
    expected_seq, prev = 1, GENESIS
    async for row in _rows(practice_id):
        seq = row.seq or 0
        problem = None
        if seq > expected_seq == 1 and any(through >= seq - 1 for through in anchors):
            # The start was purged by an operator: the chain goes on from its first remaining row.
            report.purged_through = seq - 1
            expected_seq, prev = seq, row.prev_hash or ""
        if seq != expected_seq:
            problem = (
                f"row seq {expected_seq} is missing (deleted); the chain continues at seq {seq}"
                if seq > expected_seq
                else f"seq {seq} is out of order"
            )
            if expected_seq == 1 and seq > 1:
                problem += " and no purge by an operator covers the rows before it"
        else:
            problem = _row_problem(ctx, row, prev, report.keyed_rows > 0)
        if problem is None and seq in anchors and not hmac.compare_digest(row.hash or "", anchors[seq]):
            problem = "its hash is not the one the purge that ended at it recorded (the chain was rewritten)"
        if problem is not None:
            report.bad_row_id, report.bad_seq, report.problem = row.id, row.seq, problem
            return report
        report.rows += 1
        report.keyed_rows += row.key_id is not None
        report.head = row.hash or GENESIS
        expected_seq, prev = seq + 1, report.head
    unsealed = await store.list_unsealed(practice_id, SEAL_BATCH)
    sends_ok = await _send_targets_hold(unsealed)
    for loose in unsealed:
        if _holds(ctx, loose, sends_ok) is None:
            report.bad_row_id = loose.id
            report.problem = (
                "it is not in the chain: it does not verify under this server's audit key "
                "(written or changed outside securemsg)"
            )
            break
    return report


async def practices_with_events() -> list[int]:
    return await store.list_practices_with_events()


async def verify(ctx: InboxContext, practice_id: int | None = None) -> list[ChainReport]:
    """Seal what is waiting (what a server would do in a moment anyway), then check every chain."""
    ids = [practice_id] if practice_id is not None else await practices_with_events()
    for pid in ids:
        await seal(ctx, pid)
    return [await verify_chain(ctx, pid) for pid in ids]
