from tortoise import fields, migrations
from tortoise.migrations import operations as ops

class Migration(migrations.Migration):
    dependencies = [('models', '0005_keys')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Participant',
            name='active',
            field=fields.BooleanField(default=True, db_default=True),
        ),
        ops.AddField(
            model_name='Participant',
            name='credential_epoch',
            field=fields.IntField(default=0, db_default=0),
        ),
    ]
