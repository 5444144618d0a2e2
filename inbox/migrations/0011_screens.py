"""Issue 16, times: the practice's time zone, in which chart notes, transcripts and exports write times.
Null until an owner or manager chooses one (or their browser's is taken): UTC applies meanwhile."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0010_device_last_seen")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Practice", name="time_zone", field=fields.CharField(max_length=64, null=True)
        ),
    ]
