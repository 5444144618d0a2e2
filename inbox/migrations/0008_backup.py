"""Issue 18, retention: an index for each question the dispatcher's pruning asks (inbox.retention), so a
prune costs the rows it removes, not the table it reads."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0007_oidc')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='OutboxJob',
            index=Index(fields=['status', 'finished_at']),
        ),
        ops.AddIndex(
            model_name='WebhookDelivery',
            index=Index(fields=['created_at']),
        ),
        ops.AddIndex(
            model_name='AuthToken',
            index=Index(fields=['expires_at']),
        ),
        ops.AddIndex(
            model_name='AuthToken',
            index=Index(fields=['revoked_at']),
        ),
        ops.AddIndex(
            model_name='LinkToken',
            index=Index(fields=['expires_at']),
        ),
        ops.AddIndex(
            model_name='Device',
            index=Index(fields=['auth_token_id']),
        ),
    ]
