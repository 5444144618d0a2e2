"""Issue 17, Web Push for the web inbox: a browser's push subscription, sealed, on its device row."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0011_screens")]

    initial = False

    operations = [
        ops.AddField(model_name="Device", name="subscription_cipher", field=fields.BinaryField(null=True)),
    ]
