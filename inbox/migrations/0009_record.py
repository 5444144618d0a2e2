from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


async def _keep_unique_seq(apps, schema_editor):
    # SQLite alters a column by rebuilding the table, and the rebuild drops the table's UNIQUE (practice_id,
    # seq): put it back as an index. PostgreSQL only dropped NOT NULL and still has its constraint.
    if schema_editor.DIALECT == "sqlite":
        await schema_editor.client.execute_script(
            'CREATE UNIQUE INDEX IF NOT EXISTS "uid_audit_event_practice_seq" '
            'ON "audit_event" ("practice_id", "seq")'
        )


class Migration(migrations.Migration):
    dependencies = [('models', '0008_backup')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='AuditEvent',
            name='seq',
            field=fields.IntField(null=True),
        ),
        ops.AlterField(
            model_name='AuditEvent',
            name='prev_hash',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AlterField(
            model_name='AuditEvent',
            name='hash',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.RunPython(_keep_unique_seq),
        ops.AddField(
            model_name='AuditEvent',
            name='mac',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='AuditEvent',
            name='key_id',
            field=fields.CharField(null=True, max_length=16),
        ),
        ops.AddIndex(
            model_name='AuditEvent',
            index=Index(fields=['actor_id', 'target_id', 'action']),
        ),
        ops.AddIndex(
            model_name='AuditEvent',
            index=Index(fields=['seq']),
        ),
        ops.AddField(
            model_name='Practice',
            name='allow_unencrypted_exports',
            field=fields.BooleanField(default=False, db_default=False),
        ),
    ]
