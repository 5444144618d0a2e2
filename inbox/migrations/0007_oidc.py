"""Issue 17, "Sign in with Google" for the portal: linked provider accounts and sign-ins under way."""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0006_accounts")]

    initial = False

    operations = [
        ops.CreateModel(
            name="OidcIdentity",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("participant", fields.ForeignKeyField("models.Participant", source_field="participant_id", db_constraint=True, to_field="id", related_name=False, on_delete=OnDelete.CASCADE)),
                ("issuer", fields.CharField(max_length=255)),
                ("subject", fields.CharField(max_length=255)),
                ("linked_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={"table": "oidc_identity", "app": "models", "unique_together": (("participant_id", "issuer"),), "indexes": [Index(fields=["issuer", "subject"])], "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OidcAttempt",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("state_hash", fields.CharField(unique=True, max_length=64)),
                ("browser_hash", fields.CharField(max_length=64)),
                ("purpose", fields.CharField(max_length=8)),
                ("participant_id", fields.IntField(null=True)),
                ("candidates", fields.JSONField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("expires_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("chosen_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={"table": "oidc_attempt", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
    ]
