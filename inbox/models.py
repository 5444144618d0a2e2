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
    # The IANA zone chart notes, transcripts and exports write times in (inbox.timezones); null: not chosen
    # yet, UTC applies.
    time_zone = fields.CharField(max_length=64, null=True)

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
    # The TOTP secret, sealed with the data keyring (inbox.sealed; R30). `totp_secret` is the plain-text
    # column of before migration 0004: `securemsg migrate` seals what it holds and empties it.
    totp_secret = fields.CharField(max_length=64, null=True)
    totp_secret_cipher = fields.BinaryField(null=True)
    totp_enabled = fields.BooleanField(default=False)
    # The time step (unix time // 30) of the last code accepted: a code works once, and never one from an
    # earlier step (R30).
    totp_last_step = fields.IntField(null=True)
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
    # R26: a deactivated team member keeps their row (what they wrote stays in transcripts and exports)
    # but can no longer sign in, be messaged or be notified.
    active = fields.BooleanField(default=True, db_default=True)
    # Raised whenever a person's credentials change or their access ends (password change or reset,
    # deactivation): trusted-device tokens are MACed with it, so every older one stops working (R25).
    credential_epoch = fields.IntField(default=0, db_default=0)

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
    """Bearer tokens, web sessions and practice API keys. Only a keyed hash of the token is stored.

    An API key (kind `api_key`) also has a name and scopes (R29, inbox.apikeys)."""

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
    name = fields.CharField(max_length=100, null=True)  # API keys only
    scopes = fields.CharField(max_length=64, null=True)  # API keys only: comma-separated
    last_used_at = fields.DatetimeField(null=True)  # API keys only, to the minute

    practice_id: int
    participant_id: int | None

    class Meta:
        table = "auth_token"
        # Retention (inbox.retention) looks for tokens long expired or long revoked.
        indexes = (("participant_id",), ("expires_at",), ("revoked_at",))


class LinkToken(Model):
    """Magic links from emails (24 h), Instant Sign In links (15 min, single use), and a team member's
    set-password links: a password reset (30 min) or an invitation (7 days), single use (R25)."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    purpose = fields.CharField(max_length=16)  # notify | signin | reset | invite
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
        indexes = (("participant_id", "purpose"), ("expires_at",))  # the latter for retention


class OutboxJob(Model):
    """Work that must survive a crash: emails, unread checks, pushes, webhooks, exports."""

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
        # Retention prunes history by status and finished_at (inbox.retention).
        indexes = (
            ("status", "due_at"),
            ("recipient_id", "kind", "status", "finished_at"),
            ("message_id",),
            ("status", "finished_at"),
        )


class Device(Model):
    id = fields.IntField(primary_key=True)
    participant: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    platform = fields.CharField(max_length=8)  # apns | fcm | webpush
    # APNs / FCM: the device token. Web Push: "sha256:" and the hex SHA-256 of the subscription's endpoint,
    # so the same browser subscription is found again; the endpoint itself is sealed with its keys.
    token = fields.CharField(max_length=512)
    app = fields.CharField(max_length=16)  # practice | client
    alerts: dict = fields.JSONField()
    enabled = fields.BooleanField(default=True)
    disabled_reason = fields.CharField(max_length=200, null=True)
    auth_token_id = fields.IntField(null=True)  # the session that registered it; signing out removes it
    created_at = fields.DatetimeField()
    # The device's newest registration (apps register again on every start): "last seen" in the settings.
    last_seen_at = fields.DatetimeField(null=True)
    # A push token is one per practice: a phone used with two practices has a device in each, and nobody
    # in one practice can take over (or learn of) a registration in another (inbox.devices).
    practice_id = fields.IntField(null=True)
    # Web Push only: the browser's subscription (endpoint, p256dh, auth) as JSON, sealed under this row's id
    # (inbox.sealed, R30): the auth secret is a key, kept like the other secrets the server reads back.
    subscription_cipher = fields.BinaryField(null=True)

    participant_id: int

    class Meta:
        table = "device"
        unique_together = (("practice_id", "platform", "token"),)
        # auth_token_id: retention removes the devices of the revoked sessions it prunes.
        indexes = (("participant_id",), ("auth_token_id",))


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
    # The signing secret, sealed with the data keyring (inbox.sealed; R30). `secret` is the plain-text column
    # of before migration 0004: empty for every webhook once `securemsg migrate` has sealed it.
    secret = fields.CharField(max_length=100)
    secret_cipher = fields.BinaryField(null=True)
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
        indexes = (("webhook_id", "id"), ("created_at",))  # the latter for retention


class Installation(Model):
    """One row: this database's random id (`inbox.installation`), carried by its emails' Message-IDs."""

    id = fields.IntField(primary_key=True)
    uid = fields.CharField(max_length=32)
    created_at = fields.DatetimeField()

    class Meta:
        table = "installation"


class OidcIdentity(Model):
    """A client's or contact's account at the OpenID Connect provider ("Sign in with Google"), linked from
    the portal: the provider's (issuer, subject) pair, which stays when the person's email there changes."""

    id = fields.IntField(primary_key=True)
    participant: fields.ForeignKeyRelation[Participant] = fields.ForeignKeyField(
        "models.Participant", related_name=False, on_delete=fields.CASCADE
    )
    issuer = fields.CharField(max_length=255)
    subject = fields.CharField(max_length=255)
    linked_at = fields.DatetimeField()

    participant_id: int

    class Meta:
        table = "oidc_identity"
        unique_together = (("participant_id", "issuer"),)
        indexes = (("issuer", "subject"),)


class OidcAttempt(Model):
    """One "Sign in with Google" (or linking) under way: the keyed hash of its `state`, and of the random
    value in the HttpOnly cookie of the browser that started it. The nonce and the PKCE verifier are derived
    from the state with the server's secret, so none of them is stored. Used once; ten minutes."""

    id = fields.IntField(primary_key=True)
    state_hash = fields.CharField(max_length=64, unique=True)
    browser_hash = fields.CharField(max_length=64)
    purpose = fields.CharField(max_length=8)  # signin | link
    # Linking: the signed-in person; a sign-in that matched several people: whom the browser may choose from.
    participant_id = fields.IntField(null=True)
    candidates: list = fields.JSONField(null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)
    used_at = fields.DatetimeField(null=True)
    chosen_at = fields.DatetimeField(null=True)

    class Meta:
        table = "oidc_attempt"
