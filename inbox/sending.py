"""The send path (POST /conversations/{id}/messages): the same rules as the rest of `inbox.messaging`, with
as few round trips as the rules allow.

One read unit, one write unit (see `inbox.rawsql`):

- read: the conversation's members (the actor must be one of them, in the actor's practice; anything else
  is a 404), their `has_written` flags and the practice's flags in one query; the earlier message when a
  `client_msg_id` is given; then, only if the conversation holds both a client side and team members, the
  access grants (and a contact's client when the client is not in it). On SQLite all of it is one hop.
- the checks, in Python, in the same order as ever: 404, body (R12), client_msg_id, the replay of an
  earlier send (200, never a duplicate), then who may write to whom (R1–R10, `inbox.permissions`).
- write, through the group commit (`inbox.groupcommit`): the message, its audit row (R24, unsealed with its
  mac: `audit.send_row`; sealed into the chain a moment after the commit), the members' unread counts and
  activity, the conversation's last message, the outbox rows (`outbox.new_message_rows`), the webhook
  deliveries (`webhooks.new_delivery`), and the recipients' unread totals read in the same transaction.

A duplicate `client_msg_id` that races past the read (two sends of the same id at once) fails its write on
the unique index and is answered with the first message, as before.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from tortoise.exceptions import IntegrityError

from inbox import accounts, audit, outbox, rawsql, webhooks
from inbox.accounts import Principal
from inbox.context import InboxContext
from inbox.errors import Conflict, Invalid, NotFound
from inbox.messaging import (
    Event,
    Facts,
    Sent,
    _check,
    banner_for,
    iso,
    render_body_html,
    validate_body,
)
from inbox.models import (
    CLIENT,
    TEAM,
    AuditEvent,
    Message,
    OutboxJob,
    Participant,
    Webhook,
    WebhookDelivery,
)
from inbox.permissions import PracticeFlags
from inbox.rawsql import Stmt, marks

EVENT = "message.created"
MAX_CLIENT_MSG_ID = 100  # characters of a client_msg_id (the column's width)


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
        f"SELECT {rawsql.columns(Participant, 'p')}, {_MEMBER_COLUMNS}, "  # noqa: S608
        "(SELECT e.id FROM message e WHERE e.sender_id = ? AND e.client_msg_id = ?) AS earlier_id "
        f"{_MEMBERS_FROM} WHERE c.id = ? AND c.practice_id = ? ORDER BY p.id"
    )


@cache
def _caller_and_members_sql() -> str:
    """Who is calling (as `accounts.resolve_token` asks it) and the conversation's members (as
    `_members_sql`), in one query: a row per member, each with the token's and the caller's columns (`a_…`);
    one row with no member when the conversation is not the caller's practice's; none for an unknown token."""
    return (
        f"SELECT {accounts.CALLER_COLUMNS}, {rawsql.columns(Participant, 'a', prefix='a_')}, "  # noqa: S608
        "(SELECT e.id FROM message e WHERE e.sender_id = t.participant_id AND e.client_msg_id = ?) "
        "AS earlier_id, mm.* FROM auth_token t LEFT JOIN participant a ON a.id = t.participant_id "
        "LEFT JOIN (SELECT c.practice_id AS c_practice_id, "
        f"{rawsql.columns(Participant, 'p')}, {_MEMBER_COLUMNS} {_MEMBERS_FROM} WHERE c.id = ?) mm "
        "ON mm.c_practice_id = t.practice_id "
        "WHERE t.token_hash = ? AND t.revoked_at IS NULL ORDER BY mm.id"
    )


@cache
def _earlier_sql() -> str:
    columns = rawsql.columns(Message, "m")
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
            params.append(rawsql.db_value(OutboxJob, "payload", value) if column == "payload" else value)
    return Stmt(f"INSERT INTO outbox_job ({', '.join(_OUTBOX_COLUMNS)}) VALUES {values}", params)  # noqa: S608


# --- read -----------------------------------------------------------------------------------------------


@dataclass
class _Loaded:
    people: list[Participant]
    writers: set[int]
    flags: PracticeFlags
    unread_delay_s: int | None
    earlier: Message | None = None
    grants: set[tuple[int, int]] = field(default_factory=set)
    clients: dict[int, Participant] = field(default_factory=dict)


def _earlier_key(client_msg_id: str | None) -> str | None:
    return client_msg_id if client_msg_id is not None and 1 <= len(client_msg_id) <= 100 else None


def _read(
    actor: Participant, conversation_id: int, client_msg_id: str | None
) -> Generator[Stmt, Any, _Loaded | None]:
    # The earlier message of this client_msg_id, if any, comes along in the same query (its id, at least).
    earlier_key = _earlier_key(client_msg_id)
    rows: list[dict[str, Any]] = yield Stmt(
        _members_sql(), (actor.id, earlier_key, conversation_id, actor.practice_id), rows=True
    )
    return (yield from _read_rest(actor, rows, earlier_key))


def _read_with_caller(
    token_hash: str, conversation_id: int, client_msg_id: str | None, now: datetime
) -> Generator[Stmt, Any, tuple[Principal | None, _Loaded | None]]:
    """`resolve_token` and `_read` in one query (one round trip on PostgreSQL instead of two)."""
    earlier_key = _earlier_key(client_msg_id)
    rows: list[dict[str, Any]] = yield Stmt(
        _caller_and_members_sql(), (earlier_key, conversation_id, token_hash), rows=True
    )
    principal = accounts.principal_from_row(rows[0], now, participant_prefix="a_") if rows else None
    if principal is None or principal.participant is None:
        return principal, None
    members = [r for r in rows if r["id"] is not None]
    return principal, (yield from _read_rest(principal.participant, members, earlier_key))


def _read_rest(
    actor: Participant, rows: list[dict[str, Any]], earlier_key: str | None
) -> Generator[Stmt, Any, _Loaded | None]:
    """What `_read` loads after the members (`rows`, from `_members_sql`'s columns)."""
    if not any(r["id"] == actor.id for r in rows):
        return None
    first = rows[0]
    loaded = _Loaded(
        people=[rawsql.model_from_row(Participant, r) for r in rows],
        writers={r["id"] for r in rows if r["m_has_written"]},
        flags=PracticeFlags(bool(first["pr_client_on"]), bool(first["pr_team_on"])),
        unread_delay_s=first["pr_delay"],
    )
    if first["earlier_id"] is not None:
        found = yield Stmt(_earlier_sql(), (actor.id, earlier_key), rows=True)
        if found:
            loaded.earlier = rawsql.model_from_row(Message, found[0])
            return loaded
    # The facts the permission check needs beyond the members (as `messaging.load_facts` loads them).
    people = loaded.people
    clients = {p.id: p for p in people if p.kind == CLIENT}
    client_ids = {p.id if p.kind == CLIENT else p.client_id for p in people if p.kind != TEAM}
    client_ids.discard(None)
    missing = [c for c in client_ids if c is not None and c not in clients]
    if missing:
        found = yield Stmt(
            f"SELECT {rawsql.columns(Participant, 'p')} FROM participant p "  # noqa: S608
            f"WHERE p.id IN ({marks(len(missing))}) AND p.practice_id = ?",
            (*missing, actor.practice_id),
            rows=True,
        )
        for r in found:
            clients[r["id"]] = rawsql.model_from_row(Participant, r)
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
class _NewMessage:
    conversation_id: int
    practice_id: int
    sender_id: int
    cipher: bytes
    client_msg_id: str | None
    now: datetime
    recipients: tuple[tuple[int, str], ...]  # (id, kind) of everyone but the sender
    unread_delay_s: int
    audit: audit.SendRow  # its target_id, the message id, is put in by the write


def _audit_params(row: audit.SendRow, message_id: int | None) -> tuple[Any, ...]:
    """The audit row's values, in `_AUDIT_COLUMNS` order (PostgreSQL: without target_id, which the
    statement takes from the message it inserts)."""
    head = (row.practice_id, row.at, row.actor_id, row.actor_kind, row.action, row.target_type)
    tail = (rawsql.db_value(AuditEvent, "detail", row.detail), row.ip, row.mac, row.key_id)
    return (*head, str(message_id), *tail) if message_id is not None else (*head, *tail)


def _write_postgres(new: _NewMessage) -> Generator[Stmt, Any, tuple[int, dict[int, int]]]:
    now, conv, sender, practice = new.now, new.conversation_id, new.sender_id, new.practice_id
    rows = outbox.new_message_rows(
        practice_id=practice,
        conversation_id=conv,
        message_id=0,  # the statement puts in the new message's id
        recipients=new.recipients,
        delay_s=new.unread_delay_s,
        now=now,
    )
    params = (
        conv,
        *(sender, new.cipher, new.client_msg_id, now),
        *(sender, sender, sender, now, conv),
        *(now, conv),
        *(practice, conv, now),
        [r["kind"] for r in rows],
        [r["due_at"] for r in rows],
        [r["recipient_id"] for r in rows],
        [rawsql.db_value(OutboxJob, "payload", r["payload"]) for r in rows],
        *(practice, json.dumps([EVENT])),
        *(EVENT, EVENT, webhooks.new_delivery(EVENT, {}, now)[1]["created_at"], conv, sender, now),
        *(webhooks.WEBHOOK, now, practice, now),
        *_audit_params(new.audit, None),
        conv,
        [*(rid for rid, _ in new.recipients), sender],
    )
    rows_back = yield Stmt(_PG_WRITE, params, rows=True)
    if not rows_back:  # no conversation row to lock: it is gone, and nothing was written
        raise NotFound("conversation")
    before = {int(r["participant_id"]): r for r in rows_back if r["participant_id"] is not None}

    def total(pid: int) -> int:
        return int(before[pid]["total"] or 0) if pid in before else 0

    totals = {rid: total(rid) + 1 for rid, _ in new.recipients}
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


def _write(new: _NewMessage) -> Generator[Stmt, Any, tuple[int, dict[int, int]]]:
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
    rows = outbox.new_message_rows(
        practice_id=new.practice_id,
        conversation_id=new.conversation_id,
        message_id=message_id,
        recipients=new.recipients,
        delay_s=new.unread_delay_s,
        now=now,
    )
    if rows:
        yield _insert_outbox(rows)
    hooks = yield Stmt(_SELECT_WEBHOOKS, (new.practice_id, True), rows=True)
    for hook in hooks:
        if EVENT not in rawsql.python_value(Webhook, "events", hook["events"]):
            continue
        data = {"conversation_id": new.conversation_id, "message_id": message_id, "sender_id": sender}
        delivery_id, body = webhooks.new_delivery(EVENT, data, now)
        made = yield Stmt(
            _INSERT_DELIVERY,
            (
                hook["id"],
                delivery_id,
                EVENT,
                rawsql.db_value(WebhookDelivery, "payload", body),
                "pending",
                0,
                now,
            ),
            rows=True,
        )
        job = {
            "kind": webhooks.WEBHOOK,
            "status": "pending",
            "due_at": now,
            "attempts": 0,
            "practice_id": new.practice_id,
            "payload": {"delivery": int(made[0]["id"])},
            "created_at": now,
        }
        yield _insert_outbox([job])
    # The sender's total too: replying clears their own part of this conversation (R15).
    return message_id, (yield from _totals([rid for rid, _ in new.recipients] + [new.sender_id]))


# --- the whole send -------------------------------------------------------------------------------------


class Caller(NamedTuple):
    """Who is calling, and what `send_message` needs to know of the conversation (None: not theirs)."""

    principal: Principal | None
    loaded: _Loaded | None


async def read_caller(
    ctx: InboxContext, token: str, conversation_id: int, client_msg_id: str | None
) -> Caller:
    """`accounts.resolve_token(token)` and the read `send_message` starts with, in one query. The caller
    decides what a missing principal means (401) before anything is said about the conversation."""
    token_hash = accounts.presented_token_hash(ctx, token)
    if token_hash is None:
        return Caller(None, None)
    now = ctx.clock.now()
    principal, loaded = await rawsql.read(
        lambda: _read_with_caller(token_hash, conversation_id, client_msg_id, now)
    )
    return Caller(principal, loaded)


async def send_message(
    ctx: InboxContext,
    actor: Participant,
    conversation_id: int,
    body: str,
    client_msg_id: str | None = None,
    *,
    caller: Caller | None = None,
    ip: str | None = None,
) -> Sent:
    """`caller`: from `read_caller` with the same conversation and client_msg_id, for `actor`; without it,
    the read is made here. `ip`: the sender's address, for the send's audit row."""
    if caller is not None and caller.principal is not None and caller.principal.participant is actor:
        loaded = caller.loaded
    else:
        loaded = await rawsql.read(lambda: _read(actor, conversation_id, client_msg_id))
    if loaded is None:
        raise NotFound("conversation")
    text = validate_body(body)
    if client_msg_id is not None and not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID:
        raise Invalid(
            "invalid_client_msg_id",
            f"client_msg_id must be 1 to {MAX_CLIENT_MSG_ID} characters.",
            field="client_msg_id",
        )
    people = loaded.people
    if loaded.earlier is not None:
        return _replayed(conversation_id, loaded.earlier, people)
    others = [p for p in people if p.id != actor.id]
    _check(actor, others, Facts(loaded.flags, loaded.grants, loaded.clients), loaded.writers)

    now = ctx.clock.now()
    new = _NewMessage(
        conversation_id=conversation_id,
        practice_id=actor.practice_id,
        sender_id=actor.id,
        cipher=ctx.keyring.encrypt(text, f"conversation:{conversation_id}"),
        client_msg_id=client_msg_id,
        now=now,
        recipients=tuple((o.id, o.kind) for o in others),
        unread_delay_s=loaded.unread_delay_s or ctx.default_unread_delay_s,
        audit=audit.send_row(ctx, actor, conversation_id, now, ip),
    )
    pg = rawsql.is_postgres(rawsql.client())
    write = _write_postgres if pg else _write
    try:
        message_id, totals = await ctx.writes.run(lambda: write(new), one_statement=pg)
    except IntegrityError:
        if client_msg_id is None:
            raise
        found = await rawsql.fetch(_earlier_sql(), (actor.id, client_msg_id))
        if not found:
            raise
        return _replayed(conversation_id, rawsql.model_from_row(Message, found[0]), people)
    audit.seal_soon(ctx, actor.practice_id)

    msg = rawsql.model_from_row(
        Message,
        {
            "id": message_id,
            "conversation_id": conversation_id,
            "sender_id": actor.id,
            "body_cipher": new.cipher,
            "client_msg_id": client_msg_id,
            "created_at": now,
            "removed_at": None,
            "removed_by_id": None,
        },
    )
    # What `messaging.message_json` would say, without decrypting what was just encrypted.
    data = {
        "id": message_id,
        "conversation_id": conversation_id,
        "sender_id": actor.id,
        "body": text,
        "body_html": render_body_html(text),
        "created_at": iso(now),
        "removed": None,
        "client_msg_id": client_msg_id,
    }
    everyone = tuple(p.id for p in people)
    events = [Event(everyone, {"type": EVENT, "conversation_id": conversation_id, "message": data})]
    events += [Event((pid,), {"type": "unread", "unread_total": total}) for pid, total in totals.items()]
    return Sent(events=events, message=msg, created=True, banner=banner_for(people), data=data)


def _replayed(conversation_id: int, earlier: Message, people: list[Participant]) -> Sent:
    """The same client_msg_id again: the first message, never a duplicate."""
    if earlier.conversation_id != conversation_id:
        raise Conflict("client_msg_id_reused", "This client_msg_id was already used in another conversation.")
    return Sent(message=earlier, created=False, banner=banner_for(people))
