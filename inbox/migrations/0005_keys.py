"""Issue 12, people and access: API keys with names and scopes (R29), TOTP codes used once and TOTP/webhook
secrets sealed with the data keyring (R30), push tokens scoped to a practice.

Sealing the secrets that are stored in clear needs the data key, which a migration does not have:
`securemsg migrate` (and `serve`, `worker`, which run it) does it right after this (inbox.sealed).
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# Keys made before scopes existed could do everything: they keep both scopes (R29).
_OLD_KEYS_KEEP_BOTH_SCOPES = (
    "UPDATE auth_token SET scopes = 'integration,provisioning' WHERE kind = 'api_key'"
)
_DEVICE_PRACTICE = "UPDATE device SET practice_id = (SELECT p.practice_id FROM participant p WHERE p.id = device.participant_id)"
_DEVICE_COLUMNS = (
    "id, platform, token, app, alerts, enabled, disabled_reason, auth_token_id, created_at, participant_id, "
    "practice_id"
)
_SQLITE_DEVICE = """
CREATE TABLE "new__device" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "platform" VARCHAR(8) NOT NULL,
    "token" VARCHAR(512) NOT NULL,
    "app" VARCHAR(16) NOT NULL,
    "alerts" JSON NOT NULL,
    "enabled" INT NOT NULL,
    "disabled_reason" VARCHAR(200),
    "auth_token_id" INT,
    "created_at" TIMESTAMP NOT NULL,
    "participant_id" INT NOT NULL REFERENCES "participant" ("id") ON DELETE CASCADE,
    "practice_id" INT,
    CONSTRAINT "uid_device_practic_keys04" UNIQUE ("practice_id", "platform", "token")
)"""


async def _device_token_unique_per_practice(apps, schema_editor) -> None:
    """Replace UNIQUE (platform, token) by UNIQUE (practice_id, platform, token). SQLite cannot drop a
    table constraint, so there the table is rebuilt (nothing refers to device rows by foreign key)."""
    client = schema_editor.client
    if client.capabilities.dialect == "sqlite":
        await client.execute_script(
            f"{_SQLITE_DEVICE};\n"
            f'INSERT INTO "new__device" ({_DEVICE_COLUMNS}) SELECT {_DEVICE_COLUMNS} FROM "device";\n'
            'DROP TABLE "device";\n'
            'ALTER TABLE "new__device" RENAME TO "device";\n'
            'CREATE INDEX "idx_device_partici_d67e62" ON "device" ("participant_id");\n'
        )
        return
    _, rows = await client.execute_query(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'device'::regclass AND contype = 'u'"
    )
    for row in rows:
        await client.execute_script(f'ALTER TABLE "device" DROP CONSTRAINT "{row["conname"]}"')
    await client.execute_script(
        'ALTER TABLE "device" ADD CONSTRAINT "uid_device_practic_keys04" '
        'UNIQUE ("practice_id", "platform", "token")'
    )


class _DeviceTokenUniquePerPractice(ops.RunPython):
    def __init__(self) -> None:
        super().__init__(_device_token_unique_per_practice)

    def describe(self) -> str:
        return "Device tokens unique per practice"

    def state_forward(self, app_label, state) -> None:
        model_state = state.models[(app_label, "Device")]
        model_state.options["unique_together"] = (("practice_id", "platform", "token"),)
        state.reload_model(app_label, "Device")


class Migration(migrations.Migration):
    dependencies = [("models", "0004_exactly")]

    initial = False

    operations = [
        ops.AddField(model_name="AuthToken", name="name", field=fields.CharField(null=True, max_length=100)),
        ops.AddField(model_name="AuthToken", name="scopes", field=fields.CharField(null=True, max_length=64)),
        ops.AddField(model_name="AuthToken", name="last_used_at", field=fields.DatetimeField(null=True)),
        ops.RunSQL(_OLD_KEYS_KEEP_BOTH_SCOPES),
        ops.AddField(
            model_name="Participant", name="totp_secret_cipher", field=fields.BinaryField(null=True)
        ),
        ops.AddField(model_name="Participant", name="totp_last_step", field=fields.IntField(null=True)),
        ops.AddField(model_name="Webhook", name="secret_cipher", field=fields.BinaryField(null=True)),
        ops.AddField(model_name="Device", name="practice_id", field=fields.IntField(null=True)),
        ops.RunSQL(_DEVICE_PRACTICE),
        _DeviceTokenUniquePerPractice(),
    ]
