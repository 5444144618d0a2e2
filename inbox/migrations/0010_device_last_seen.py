"""Issue 16, the portal's notification settings: when each device was last seen (its app registers its
push token again on every start), so a person can tell their phones apart and remove an old one."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0009_record")]

    initial = False

    operations = [
        ops.AddField(model_name="Device", name="last_seen_at", field=fields.DatetimeField(null=True)),
    ]
