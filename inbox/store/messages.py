"""Messages (`message`), and the send path's prepared SQL (POST /conversations/{id}/messages).

One read unit, one write unit (see `inbox.store.sql`); the rules between them are the domain's
(`inbox.sending`):

- read (`read_send_facts`, or `read_caller_and_send_facts` with the caller's token in the same query): the
  conversation's members, as `Member`s, the few columns the send reads (the actor must be one of them, in
  the actor's practice; anything else is None),
  their `has_written` flags and the practice's flags in one query; the earlier message when a
  `client_msg_id` is given; then, only if the conversation holds both a client side and team members, the
  access grants (and a contact's client when the client is not in it). On SQLite all of it is one hop.
- write (`add_message`), through the group commit (`inbox.store.groupcommit`): the message, its audit row
  (R24, unsealed with its mac; sealed into the chain a moment after the commit), the members' unread counts
  and activity, the conversation's last message, the outbox rows, the webhook deliveries, and the
  recipients' unread totals read in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from inbox.errors import NotFound
from inbox.models import (
    CLIENT,
    TEAM,
    AuditEvent,
    Message,
    OutboxJob,
    Webhook,
    WebhookDelivery,
)
from inbox.store import sql
from inbox.store.audit import SendRow
from inbox.store.groupcommit import GroupCommit
from inbox.store.sql import Stmt, marks


class Member(NamedTuple):
    """A member of the conversation as a send reads it: the columns the checks (R1–R10, R26), the outbox
    rows, the audit row and the away banner (R20) read, not a `Participant` model. Building three Tortoise
    models from 60-column rows was a seventh of the send's event-loop time (docs/benchmarks.md)."""

    id: int
    practice_id: int
    kind: str
    name: str
    roles: str  # comma-separated, team members only
    messaging_enabled: bool
    portal_access: bool
    active: bool
    client_id: int | None
    primary_clinician_id: int | None
    away_enabled: bool
    away_message: str | None

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


# The Participant columns a Member holds, in its order.
_MEMBER_FIELDS = (
    "id, practice_id, kind, name, roles, messaging_enabled, portal_access, active, client_id, "
    "primary_clinician_id, away_enabled, away_message"
)


def _member_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{c}" for c in _MEMBER_FIELDS.split(", "))


def _member(r: Mapping[str, Any]) -> Member:
    """A Member from a row holding its columns (booleans as stored: SQLite's are integers)."""
    return Member(
        r["id"],
        r["practice_id"],
        r["kind"],
        r["name"],
        r["roles"] or "",
        bool(r["messaging_enabled"]),
        bool(r["portal_access"]),
        bool(r["active"]),
        r["client_id"],
        r["primary_clinician_id"],
        bool(r["away_enabled"]),
        r["away_message"],
    )


_MEMBER_COLUMNS = (
    "cm.has_written AS m_has_written, pr.client_messaging_enabled AS pr_client_on, "
    "pr.team_messaging_enabled AS pr_team_on, pr.unread_email_delay_s AS pr_delay"
)
_MEMBERS_FROM = (
    "FROM conversation c JOIN practice pr ON pr.id = c.practice_id "
    "JOIN conversation_member cm ON cm.conversation_id = c.id "
    "JOIN participant p ON p.id = cm.participant_id"
)


@cache
def _members_sql() -> str:
    return (
        f"SELECT {_member_columns('p')}, {_MEMBER_COLUMNS}, "  # noqa: S608
        "(SELECT e.id FROM message e WHERE e.sender_id = ? AND e.client_msg_id = ?) AS earlier_id "
        f"{_MEMBERS_FROM} WHERE c.id = ? AND c.practice_id = ? ORDER BY p.id"
    )


# What the send asks of the caller's token and its participant: what `accounts.token_holds` reads (R26,
# R27). The rest of what the caller is comes from their own member row.
CALLER_COLUMNS = (
    "t.participant_id AS t_participant_id, t.expires_at AS t_expires_at, a.id AS a_id, a.active AS a_active"
)


@cache
def _caller_and_members_sql() -> str:
    """Whether the token holds (`CALLER_COLUMNS`) and the conversation's members (as `_members_sql`), in
    one query: a row per member, each with the token's columns; one row with no member when the
    conversation is not the caller's practice's; none for an unknown or revoked token."""
    return (
        f"SELECT {CALLER_COLUMNS}, "  # noqa: S608
        "(SELECT e.id FROM message e WHERE e.sender_id = t.participant_id AND e.client_msg_id = ?) "
        "AS earlier_id, mm.* FROM auth_token t LEFT JOIN participant a ON a.id = t.participant_id "
        "LEFT JOIN (SELECT c.practice_id AS c_practice_id, "
        f"{_member_columns('p')}, {_MEMBER_COLUMNS} {_MEMBERS_FROM} WHERE c.id = ?) mm "
        "ON mm.c_practice_id = t.practice_id "
        "WHERE t.token_hash = ? AND t.revoked_at IS NULL ORDER BY mm.id"
    )


@cache
def _earlier_sql() -> str:
    columns = sql.columns(Message, "m")
    return f"SELECT {columns} FROM message m WHERE m.sender_id = ? AND m.client_msg_id = ?"  # noqa: S608


_INSERT_MESSAGE = (
    "INSERT INTO message (conversation_id, sender_id, body_cipher, client_msg_id, created_at) "
    "VALUES (?, ?, ?, ?, ?) RETURNING id"
)
# The sender has written and read up to its own message (so nothing before it is unread for them: replying
# clears one's own part of the red bubble, R15); everyone else has one more unread.
_UPDATE_MEMBERS = (
    "UPDATE conversation_member SET "
    "unread_count = CASE WHEN participant_id = ? THEN 0 ELSE unread_count + 1 END, "
    "has_written = CASE WHEN participant_id = ? THEN TRUE ELSE has_written END, "
    "last_read_message_id = CASE WHEN participant_id = ? THEN ? ELSE last_read_message_id END, "
    "last_activity_at = ? WHERE conversation_id = ?"
)
_UPDATE_CONVERSATION = "UPDATE conversation SET last_message_at = ?, last_message_id = ? WHERE id = ?"
_OUTBOX_COLUMNS = (
    "kind",
    "status",
    "due_at",
    "attempts",
    "practice_id",
    "recipient_id",
    "conversation_id",
    "message_id",
    "payload",
    "created_at",
)
# The send's audit row (R24), in the send's own transaction: unsealed, with its mac (inbox.audit); the
# sealer chains it a moment after the commit, many sends at a time.
_AUDIT_COLUMNS = (
    "practice_id, at, actor_id, actor_kind, action, target_type, target_id, detail, ip, mac, key_id"
)
_INSERT_AUDIT = f"INSERT INTO audit_event ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_SELECT_WEBHOOKS = "SELECT id, events FROM webhook WHERE practice_id = ? AND active = ? ORDER BY id"
_INSERT_DELIVERY = (
    "INSERT INTO webhook_delivery (webhook_id, delivery_id, event, payload, status, attempts, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"
)


# PostgreSQL: the whole write as one statement (data-modifying CTEs), one round trip instead of six or
# more. The same rows as `_write` builds statement by statement (the outbox rows from
# `outbox.new_message_rows`, the webhook body as `webhooks.new_delivery` shapes it, its id a uuid4 in hex).
# It locks the conversation's row before the message takes its id (the INSERT reads from `lock`), so sends
# into one conversation through several gateways commit in the order of their ids: none can set the
# conversation's last message, or a sender's read marker and unread count, back to an older message than
# one already committed.
# All parts of one statement see the snapshot from before it, so the unread totals it reads are from before
# the message: each recipient has exactly one more once it has run, and the sender none left in this
# conversation (replying clears one's own part, R15).
_PG_WRITE = """
WITH lock AS (
    SELECT id FROM conversation WHERE id = ? FOR UPDATE
), m AS (
    INSERT INTO message (conversation_id, sender_id, body_cipher, client_msg_id, created_at)
    SELECT lock.id, ?::int, ?::bytea, ?::varchar, ?::timestamptz FROM lock RETURNING id
), members AS (
    UPDATE conversation_member SET
        unread_count = CASE WHEN participant_id = ? THEN 0 ELSE unread_count + 1 END,
        has_written = CASE WHEN participant_id = ? THEN TRUE ELSE has_written END,
        last_read_message_id = CASE WHEN participant_id = ? THEN (SELECT id FROM m)
                                    ELSE last_read_message_id END,
        last_activity_at = ?
    WHERE conversation_id = ? RETURNING 1
), conv AS (
    UPDATE conversation SET last_message_at = ?, last_message_id = (SELECT id FROM m) WHERE id = ? RETURNING 1
), jobs AS (
    INSERT INTO outbox_job (kind, status, due_at, attempts, practice_id, recipient_id, conversation_id,
                            message_id, payload, created_at)
    SELECT u.kind, 'pending', u.due_at, 0, ?, u.recipient_id, ?, (SELECT id FROM m), u.payload::jsonb, ?
    FROM unnest(?::varchar[], ?::timestamptz[], ?::int[], ?::text[]) AS u(kind, due_at, recipient_id, payload)
    RETURNING 1
), hooks AS (
    SELECT id, replace(gen_random_uuid()::text, '-', '') AS delivery_id FROM webhook
    WHERE practice_id = ? AND active AND events @> ?::jsonb ORDER BY id
), deliveries AS (
    INSERT INTO webhook_delivery (webhook_id, delivery_id, event, payload, status, attempts, created_at)
    SELECT h.id, h.delivery_id, ?,
           jsonb_build_object(
               'id', h.delivery_id, 'event', ?::text, 'created_at', ?::text,
               'data', jsonb_build_object(
                   'conversation_id', ?::int, 'message_id', (SELECT id FROM m), 'sender_id', ?::int)),
           'pending', 0, ?
    FROM hooks h ORDER BY h.id RETURNING id
), hook_jobs AS (
    INSERT INTO outbox_job (kind, status, due_at, attempts, practice_id, payload, created_at)
    SELECT ?, 'pending', ?, 0, ?, jsonb_build_object('delivery', d.id), ? FROM deliveries d
    RETURNING 1
), audit AS (
    INSERT INTO audit_event (practice_id, at, actor_id, actor_kind, action, target_type, target_id, detail,
                             ip, mac, key_id)
    SELECT ?, ?::timestamptz, ?::int, ?, ?, ?, m.id::text, ?::jsonb, ?, ?, ? FROM m RETURNING 1
), totals AS (
    SELECT participant_id, SUM(unread_count) AS total,
           SUM(CASE WHEN conversation_id = ? THEN unread_count ELSE 0 END) AS here
    FROM conversation_member WHERE participant_id = ANY(?::int[]) GROUP BY participant_id
)
SELECT m.id, t.participant_id, t.total, t.here FROM m LEFT JOIN totals t ON TRUE
"""


def _insert_outbox(rows: Sequence[dict[str, Any]]) -> Stmt:
    values = ", ".join(f"({marks(len(_OUTBOX_COLUMNS))})" for _ in rows)
    params: list[Any] = []
    for row in rows:
        for column in _OUTBOX_COLUMNS:
            value = row.get(column)
            params.append(sql.db_value(OutboxJob, "payload", value) if column == "payload" else value)
    return Stmt(f"INSERT INTO outbox_job ({', '.join(_OUTBOX_COLUMNS)}) VALUES {values}", params)  # noqa: S608


# --- read -----------------------------------------------------------------------------------------------


@dataclass
class SendFacts:
    """What a send needs to know before it writes: the conversation's members, who has written, the
    practice's flags and unread-email delay, the earlier message of a client_msg_id (a replay), and the
    access grants and clients the permission check reads (as `messaging.load_facts` loads them)."""

    people: list[Member]
    writers: set[int]
    client_messaging_on: bool  # the practice's flags
    team_messaging_on: bool
    unread_delay_s: int | None
    earlier: Message | None = None
    grants: set[tuple[int, int]] = field(default_factory=set)
    clients: dict[int, Member] = field(default_factory=dict)


@dataclass(frozen=True)
class CallerFacts:
    """A token's caller and, when the token holds and its participant is a member of the conversation, what
    the send needs to know (`holds` False: unknown, revoked, expired, or its participant gone or deactivated;
    `participant_id` None: a practice API key's token)."""

    holds: bool
    participant_id: int | None = None
    actor: Member | None = None  # the caller's own member row
    loaded: SendFacts | None = None


def _earlier_key(client_msg_id: str | None) -> str | None:
    return client_msg_id if client_msg_id is not None and 1 <= len(client_msg_id) <= 100 else None


def _read(
    actor_id: int, practice_id: int, conversation_id: int, client_msg_id: str | None
) -> Generator[Stmt, Any, SendFacts | None]:
    # The earlier message of this client_msg_id, if any, comes along in the same query (its id, at least).
    earlier_key = _earlier_key(client_msg_id)
    rows: list[dict[str, Any]] = yield Stmt(
        _members_sql(), (actor_id, earlier_key, conversation_id, practice_id), rows=True
    )
    return (yield from _read_rest(actor_id, practice_id, rows, earlier_key))


def _read_with_caller(
    token_hash: str,
    conversation_id: int,
    client_msg_id: str | None,
    holds: Callable[[Mapping[str, Any]], bool],
) -> Generator[Stmt, Any, CallerFacts]:
    """The caller's token and `_read` in one query (one round trip on PostgreSQL instead of two). `holds`
    (the domain's) says whether the token still holds, from a row's `CALLER_COLUMNS`."""
    earlier_key = _earlier_key(client_msg_id)
    rows: list[dict[str, Any]] = yield Stmt(
        _caller_and_members_sql(), (earlier_key, conversation_id, token_hash), rows=True
    )
    if not rows or not holds(rows[0]):
        return CallerFacts(False)
    participant_id = rows[0]["t_participant_id"]
    if participant_id is None:
        return CallerFacts(True)
    members = [r for r in rows if r["id"] is not None]
    mine = next((r for r in members if r["id"] == participant_id), None)
    if mine is None:
        return CallerFacts(True, participant_id)
    loaded = yield from _read_rest(participant_id, mine["practice_id"], members, earlier_key)
    actor = next((p for p in loaded.people if p.id == participant_id), None) if loaded else None
    return CallerFacts(True, participant_id, actor, loaded)


def _read_rest(
    actor_id: int, practice_id: int, rows: list[dict[str, Any]], earlier_key: str | None
) -> Generator[Stmt, Any, SendFacts | None]:
    """What `_read` loads after the members (`rows`, from `_members_sql`'s columns)."""
    if not any(r["id"] == actor_id for r in rows):
        return None
    first = rows[0]
    loaded = SendFacts(
        people=[_member(r) for r in rows],
        writers={r["id"] for r in rows if r["m_has_written"]},
        client_messaging_on=bool(first["pr_client_on"]),
        team_messaging_on=bool(first["pr_team_on"]),
        unread_delay_s=first["pr_delay"],
    )
    if first["earlier_id"] is not None:
        found = yield Stmt(_earlier_sql(), (actor_id, earlier_key), rows=True)
        if found:
            loaded.earlier = sql.model_from_row(Message, found[0])
            return loaded
    # The facts the permission check needs beyond the members (as `messaging.load_facts` loads them).
    people = loaded.people
    clients = {p.id: p for p in people if p.kind == CLIENT}
    client_ids = {p.id if p.kind == CLIENT else p.client_id for p in people if p.kind != TEAM}
    client_ids.discard(None)
    missing = [c for c in client_ids if c is not None and c not in clients]
    if missing:
        found = yield Stmt(
            f"SELECT {_member_columns('p')} FROM participant p "  # noqa: S608
            f"WHERE p.id IN ({marks(len(missing))}) AND p.practice_id = ?",
            (*missing, practice_id),
            rows=True,
        )
        for r in found:
            clients[r["id"]] = _member(r)
    loaded.clients = clients
    team_ids = [p.id for p in people if p.kind == TEAM]
    if client_ids and team_ids:
        cids = sorted(c for c in client_ids if c is not None)
        grants = yield Stmt(
            f"SELECT team_member_id, client_id FROM client_access WHERE client_id IN ({marks(len(cids))}) "  # noqa: S608
            f"AND team_member_id IN ({marks(len(team_ids))})",
            (*cids, *team_ids),
            rows=True,
        )
        loaded.grants = {(int(g["team_member_id"]), int(g["client_id"])) for g in grants}
    return loaded


# --- write ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewMessage:
    """A message to write, and everything it sets in motion, as plain values the domain worked out."""

    conversation_id: int
    practice_id: int
    sender_id: int
    cipher: bytes
    client_msg_id: str | None
    now: datetime
    recipient_ids: tuple[int, ...]  # everyone but the sender
    # `outbox.new_message_rows` for this message; their message_id is put in by the write
    outbox_rows: list[dict[str, Any]]
    audit: SendRow  # its target_id, the message id, is put in by the write
    event: str  # the webhook event, for the deliveries of the webhooks that subscribed to it
    webhook_job_kind: str  # the outbox kind that delivers a webhook
    # (delivery id, body) of a webhook delivery with this data (`webhooks.new_delivery`)
    delivery: Callable[[Mapping[str, int]], tuple[str, dict[str, Any]]]


def _audit_params(row: SendRow, message_id: int | None) -> tuple[Any, ...]:
    """The audit row's values, in `_AUDIT_COLUMNS` order (PostgreSQL: without target_id, which the
    statement takes from the message it inserts)."""
    head = (row.practice_id, row.at, row.actor_id, row.actor_kind, row.action, row.target_type)
    tail = (sql.db_value(AuditEvent, "detail", row.detail), row.ip, row.mac, row.key_id)
    return (*head, str(message_id), *tail) if message_id is not None else (*head, *tail)


def _write_postgres(new: NewMessage) -> Generator[Stmt, Any, tuple[int, dict[int, int]]]:
    now, conv, sender, practice = new.now, new.conversation_id, new.sender_id, new.practice_id
    rows = new.outbox_rows  # the statement puts in the new message's id
    event = new.event
    params = (
        conv,
        *(sender, new.cipher, new.client_msg_id, now),
        *(sender, sender, sender, now, conv),
        *(now, conv),
        *(practice, conv, now),
        [r["kind"] for r in rows],
        [r["due_at"] for r in rows],
        [r["recipient_id"] for r in rows],
        [sql.db_value(OutboxJob, "payload", r["payload"]) for r in rows],
        *(practice, json.dumps([event])),
        *(event, event, new.delivery({})[1]["created_at"], conv, sender, now),
        *(new.webhook_job_kind, now, practice, now),
        *_audit_params(new.audit, None),
        conv,
        [*new.recipient_ids, sender],
    )
    rows_back = yield Stmt(_PG_WRITE, params, rows=True)
    if not rows_back:  # no conversation row to lock: it is gone, and nothing was written
        raise NotFound("conversation")
    before = {int(r["participant_id"]): r for r in rows_back if r["participant_id"] is not None}

    def total(pid: int) -> int:
        return int(before[pid]["total"] or 0) if pid in before else 0

    totals = {rid: total(rid) + 1 for rid in new.recipient_ids}
    totals[sender] = total(sender) - (int(before[sender]["here"] or 0) if sender in before else 0)
    return int(rows_back[0]["id"]), totals


def _totals(ids: list[int]) -> Generator[Stmt, Any, dict[int, int]]:
    if not ids:
        return {}
    found = yield Stmt(
        "SELECT participant_id, SUM(unread_count) AS total FROM conversation_member "  # noqa: S608
        f"WHERE participant_id IN ({marks(len(ids))}) GROUP BY participant_id",
        ids,
        rows=True,
    )
    summed = {int(r["participant_id"]): int(r["total"] or 0) for r in found}
    return {rid: summed.get(rid, 0) for rid in ids}


def _write(new: NewMessage) -> Generator[Stmt, Any, tuple[int, dict[int, int]]]:
    now = new.now
    inserted = yield Stmt(
        _INSERT_MESSAGE,
        (new.conversation_id, new.sender_id, new.cipher, new.client_msg_id, now),
        rows=True,
    )
    message_id = int(inserted[0]["id"])
    sender = new.sender_id
    yield Stmt(_INSERT_AUDIT, _audit_params(new.audit, message_id))
    yield Stmt(_UPDATE_MEMBERS, (sender, sender, sender, message_id, now, new.conversation_id))
    yield Stmt(_UPDATE_CONVERSATION, (now, message_id, new.conversation_id))
    rows = [{**row, "message_id": message_id} for row in new.outbox_rows]
    if rows:
        yield _insert_outbox(rows)
    hooks = yield Stmt(_SELECT_WEBHOOKS, (new.practice_id, True), rows=True)
    for hook in hooks:
        if new.event not in sql.python_value(Webhook, "events", hook["events"]):
            continue
        data = {"conversation_id": new.conversation_id, "message_id": message_id, "sender_id": sender}
        delivery_id, body = new.delivery(data)
        made = yield Stmt(
            _INSERT_DELIVERY,
            (
                hook["id"],
                delivery_id,
                new.event,
                sql.db_value(WebhookDelivery, "payload", body),
                "pending",
                0,
                now,
            ),
            rows=True,
        )
        job = {
            "kind": new.webhook_job_kind,
            "status": "pending",
            "due_at": now,
            "attempts": 0,
            "practice_id": new.practice_id,
            "payload": {"delivery": int(made[0]["id"])},
            "created_at": now,
        }
        yield _insert_outbox([job])
    # The sender's total too: replying clears their own part of this conversation (R15).
    return message_id, (yield from _totals([*new.recipient_ids, new.sender_id]))


# --- the units, by name -----------------------------------------------------------------------------------


async def read_send_facts(
    actor_id: int, practice_id: int, conversation_id: int, client_msg_id: str | None
) -> SendFacts | None:
    """What a send into this conversation needs to know; None when the actor is not in it (or it is not
    in the actor's practice)."""
    return await sql.read(lambda: _read(actor_id, practice_id, conversation_id, client_msg_id))


async def read_caller_and_send_facts(
    token_hash: str,
    conversation_id: int,
    client_msg_id: str | None,
    holds: Callable[[Mapping[str, Any]], bool],
) -> CallerFacts:
    """Whether a token holds (`holds`, see `_read_with_caller`), whose it is, and `read_send_facts` for
    them, in one query."""
    return await sql.read(lambda: _read_with_caller(token_hash, conversation_id, client_msg_id, holds))


async def add_message(writes: GroupCommit, new: NewMessage) -> tuple[int, dict[int, int]]:
    """Write the message and what it sets in motion in a shared transaction (`writes`); returns its id and
    the unread totals of the recipients and the sender once it has committed. A duplicate client_msg_id
    raises Tortoise's IntegrityError; a conversation gone meanwhile, NotFound."""
    pg = sql.is_postgres(sql.client())
    write = _write_postgres if pg else _write
    result: tuple[int, dict[int, int]] = await writes.run(lambda: write(new), one_statement=pg)
    return result


async def get_earlier_message(sender_id: int, client_msg_id: str) -> Message | None:
    """The sender's message with this client_msg_id, if any (the unique index's other half)."""
    found = await sql.fetch(_earlier_sql(), (sender_id, client_msg_id))
    return sql.model_from_row(Message, found[0]) if found else None


def written_message(new: NewMessage, message_id: int) -> Message:
    """The Message `add_message` has just written, as if loaded, without asking the database again."""
    return sql.model_from_row(
        Message,
        {
            "id": message_id,
            "conversation_id": new.conversation_id,
            "sender_id": new.sender_id,
            "body_cipher": new.cipher,
            "client_msg_id": new.client_msg_id,
            "created_at": new.now,
            "removed_at": None,
            "removed_by_id": None,
        },
    )


# --- messages through the ORM -------------------------------------------------------------------------


async def get_message(message_id: int) -> Message | None:
    return await Message.filter(id=message_id).first()


async def get_messages(ids: Collection[int]) -> dict[int, Message]:
    return {m.id: m for m in await Message.filter(id__in=list(ids))}


async def is_in_conversation(message_id: int, conversation_id: int) -> bool:
    return await Message.filter(id=message_id, conversation_id=conversation_id).exists()


async def list_messages_page(conversation_id: int, before: int | None, limit: int) -> list[Message]:
    """The conversation's messages before the id `before` (the newest, without it), newest first."""
    query = Message.filter(conversation_id=conversation_id)
    if before is not None:
        query = query.filter(id__lt=before)
    return list(await query.order_by("-id").limit(limit))


async def count_unread(conversation_id: int, after_message_id: int, reader_id: int) -> int:
    """Messages after this one that count as unread for the reader: not removed, not the reader's own."""
    return (
        await Message.filter(conversation_id=conversation_id, id__gt=after_message_id, removed_at=None)
        .exclude(sender_id=reader_id)
        .count()
    )


async def set_removed(msg: Message, by_id: int, at: datetime) -> None:
    """R14: the message is removed (its ciphertext stays)."""
    msg.removed_at = at
    msg.removed_by_id = by_id
    await msg.save(update_fields=["removed_at", "removed_by_id"])
