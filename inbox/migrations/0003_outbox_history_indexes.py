from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_webhook_practice_index')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='OutboxJob',
            name=None,
            fields=['recipient_id', 'kind', 'status'],
        ),
        ops.AddIndex(
            model_name='OutboxJob',
            index=Index(fields=['recipient_id', 'kind', 'status', 'finished_at']),
        ),
        ops.AddIndex(
            model_name='OutboxJob',
            index=Index(fields=['message_id']),
        ),
    ]
