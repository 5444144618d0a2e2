"""The stored shape of the domain. Queries over these live in the other `inbox` modules.

Team members, clients and client contacts are all `Participant` rows (with a `kind`), so a conversation's
participant set, read state and permissions work the same way for every kind of person.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

TEAM, CLIENT, CONTACT = "team", "client", "contact"
ROLES = ("account_owner", "practice_manager", "clinician", "supervisor", "biller", "scheduler")


class Practice(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    client_messaging_enabled = fields.BooleanField(default=False)
    team_messaging_enabled = fields.BooleanField(default=True)
    auto_enable_new_clients = fields.BooleanField(default=False)
    unread_email_delay_s = fields.IntField(null=True)
    created_at = fields.DatetimeField()
    # Exports without a password (R23) only when the practice chose to allow them.
    allow_unencrypted_exports = fields.BooleanField(default=False, db_default=False)

    class Meta:
        table = "practice"


class Participant(Model):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="participants", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=8)
    name = fields.CharField(max_length=200)
    email = fields.CharField(max_length=254, db_index=True)
    roles = fields.CharField(max_length=200, default="")  # comma-separated, team members only
    messaging_enabled = fields.BooleanField(default=False)
    portal_access = fields.BooleanField(default=False)
    can_export = fields.BooleanField(default=False)
    password_hash = fields.CharField(max_length=200, null=True)
    totp_secret = fields.CharField(max_length=64, null=True)
    totp_enabled = fields.BooleanField(default=False)
    away_enabled = fields.BooleanField(default=False)
    away_message: str | None = fields.TextField(null=True)
    primary_clinician: fields.ForeignKeyNullableRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    client: fields.ForeignKeyNullableRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, null=True, on_delete=fields.CASCADE
    )
    failed_logins = fields.IntField(default=0)
    locked_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    practice_id: int
    primary_clinician_id: int | None
    client_id: int | None

    class Meta:
        table = "participant"
        indexes = (("practice_id", "kind"),)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class ClientAccess(Model):
    """A team member's access to a client's profile (R5, R7, R21). The primary clinician always has it."""

    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    team_member: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()

    client_id: int
    team_member_id: int

    class Meta:
        table = "client_access"
        unique_together = (("client_id", "team_member_id"),)
        indexes = (("team_member_id",),)


class Conversation(Model):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name=False, on_delete=fields.CASCADE
    )
    # The sorted participant ids: one exchange per set of participants (R11).
    member_key = fields.CharField(max_length=600)
    # The client whose file this conversation belongs to (transcripts, exports); null for team-only ones.
    client: fields.ForeignKeyNullableRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField()
    last_message_at = fields.DatetimeField(null=True)
    last_message_id = fields.BigIntField(null=True)

    practice_id: int
    client_id: int | None

    class Meta:
        table = "conversation"
        unique_together = (("practice_id", "member_key"),)
        indexes = (("client_id",),)


class ConversationMember(Model):
    id = fields.IntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="members", on_delete=fields.CASCADE
    )
    participant: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    unread_count = fields.IntField(default=0)
    last_read_message_id = fields.BigIntField(null=True)
    has_written = fields.BooleanField(default=False)
    # Copied from the conversation so that "my conversations, newest activity first" is one index range.
    last_activity_at = fields.DatetimeField()

    conversation_id: int
    participant_id: int

    class Meta:
        table = "conversation_member"
        unique_together = (("conversation_id", "participant_id"),)
        indexes = (("participant_id", "last_activity_at", "conversation_id"),)


class Message(Model):
    id = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name=False, on_delete=fields.CASCADE
    )
    sender: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    body_cipher = fields.BinaryField()
    client_msg_id = fields.CharField(max_length=100, null=True)
    created_at = fields.DatetimeField()
    removed_at = fields.DatetimeField(null=True)
    removed_by: fields.ForeignKeyNullableRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, null=True, on_delete=fields.SET_NULL
    )

    conversation_id: int
    sender_id: int
    removed_by_id: int | None

    class Meta:
        table = "message"
        unique_together = (("sender_id", "client_msg_id"),)
        indexes = (("conversation_id", "id"),)


class AuthToken(Model):
    """Bearer tokens, web sessions and practice API keys. Only a keyed hash of the token is stored."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    kind = fields.CharField(max_length=16)  # session | app | api_key
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name=False, on_delete=fields.CASCADE
    )
    participant: fields.ForeignKeyNullableRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, null=True, on_delete=fields.CASCADE
    )
    csrf_token = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    practice_id: int
    participant_id: int | None

    class Meta:
        table = "auth_token"
        indexes = (("participant_id",),)


class LinkToken(Model):
    """Magic links from emails (24 h) and Instant Sign In links (15 min, single use)."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    purpose = fields.CharField(max_length=16)  # notify | signin
    participant: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    conversation: fields.ForeignKeyNullableRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name=False, null=True, on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    participant_id: int
    conversation_id: int | None

    class Meta:
        table = "link_token"
        indexes = (("participant_id", "purpose"),)


class OutboxJob(Model):
    """Work that must survive a crash: emails, unread checks, pushes, webhooks, exports (DESIGN.md)."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    status = fields.CharField(max_length=12, default="pending")  # pending | done | skipped | failed
    due_at = fields.DatetimeField()
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    claimed_until = fields.DatetimeField(null=True)
    claimed_by = fields.CharField(max_length=64, null=True)
    practice_id = fields.IntField(null=True)
    recipient_id = fields.IntField(null=True)
    conversation_id = fields.IntField(null=True)
    message_id = fields.BigIntField(null=True)
    payload: dict = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox_job"
        # The dispatcher's questions must cost what is due, not what is stored (issue #7, bench/dispatch.py):
        # "emails done for these people since T" ranges over finished_at; "the rows of this message"
        # (was its new-message email sent? cancel on removal) looks up message_id.
        indexes = (("status", "due_at"), ("recipient_id", "kind", "status", "finished_at"), ("message_id",))


class Device(Model):
    id = fields.IntField(primary_key=True)
    participant: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    platform = fields.CharField(max_length=8)  # apns | fcm
    token = fields.CharField(max_length=512)
    app = fields.CharField(max_length=16)  # practice | client
    alerts: dict = fields.JSONField()
    enabled = fields.BooleanField(default=True)
    disabled_reason = fields.CharField(max_length=200, null=True)
    auth_token_id = fields.IntField(null=True)  # the session that registered it; signing out removes it
    created_at = fields.DatetimeField()

    participant_id: int

    class Meta:
        table = "device"
        unique_together = (("platform", "token"),)
        indexes = (("participant_id",),)


class AuditEvent(Model):
    """Append-only, hash-chained per practice (R24). A row is written in the transaction of the change it
    records, with its own keyed MAC; it is sealed into the chain (seq, prev_hash, hash) right after, a batch
    at a time (inbox.audit). `key_id` is None for rows of the older, unkeyed chain."""

    id = fields.BigIntField(primary_key=True)
    practice_id = fields.IntField()
    seq = fields.IntField(null=True)
    at = fields.DatetimeField()
    actor_id = fields.IntField(null=True)
    actor_kind = fields.CharField(max_length=16)
    action = fields.CharField(max_length=48)
    target_type = fields.CharField(max_length=32, null=True)
    target_id = fields.CharField(max_length=64, null=True)
    detail: dict = fields.JSONField(default=dict)
    ip = fields.CharField(max_length=64, null=True)
    prev_hash = fields.CharField(max_length=64, null=True)
    hash = fields.CharField(max_length=64, null=True)
    mac = fields.CharField(max_length=64, null=True)
    key_id = fields.CharField(max_length=16, null=True)

    class Meta:
        table = "audit_event"
        unique_together = (("practice_id", "seq"),)
        # "Has this person opened this conversation in the last hour?" (inbox.audit.record_access)
        indexes = (("actor_id", "target_id", "action"), ("seq",))


class ChartNote(Model):
    id = fields.IntField(primary_key=True)
    client: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    author: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    text_cipher = fields.BinaryField()
    message_ids: list = fields.JSONField(default=list)
    created_at = fields.DatetimeField()

    client_id: int
    author_id: int

    class Meta:
        table = "chart_note"
        indexes = (("client_id", "id"),)


class Export(Model):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name=False, on_delete=fields.CASCADE
    )
    requested_by: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    scope = fields.CharField(max_length=16)
    clinician_id = fields.IntField(null=True)
    require_password = fields.BooleanField(default=True)
    password_cipher = fields.BinaryField(null=True)
    status = fields.CharField(max_length=12, default="pending")
    error = fields.TextField(null=True)
    file_path = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)

    practice_id: int
    requested_by_id: int

    class Meta:
        table = "export"


class Webhook(Model):
    id = fields.IntField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name=False, on_delete=fields.CASCADE
    )
    url = fields.CharField(max_length=1000)
    events: list = fields.JSONField()
    secret = fields.CharField(max_length=100)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    practice_id: int

    class Meta:
        table = "webhook"
        # Every send, read and removal asks "which webhooks does this practice have?" (inbox.webhooks).
        indexes = (("practice_id", "active"),)


class WebhookDelivery(Model):
    id = fields.BigIntField(primary_key=True)
    webhook: fields.ForeignKeyRelation[Webhook] = fields.ForeignKeyField(
        "models.Webhook", related_name=False, on_delete=fields.CASCADE
    )
    delivery_id = fields.CharField(max_length=64, unique=True)
    event = fields.CharField(max_length=32)
    payload: dict = fields.JSONField()
    status = fields.CharField(max_length=12, default="pending")
    attempts = fields.IntField(default=0)
    last_status_code = fields.IntField(null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    delivered_at = fields.DatetimeField(null=True)

    webhook_id: int

    class Meta:
        table = "webhook_delivery"
        indexes = (("webhook_id", "id"),)
