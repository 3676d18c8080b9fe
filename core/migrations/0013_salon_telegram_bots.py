from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# Issue 15: a salon's own Telegram bot (token, its id and username, the opaque key of its
# webhook route, when Telegram refused it) and which bot a client's Telegram chat is with.

class Migration(migrations.Migration):
    dependencies = [('models', '0012_max_channel')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Company',
            name='telegram_bot_token',
            field=fields.CharField(null=True, max_length=128),
        ),
        ops.AddField(
            model_name='Company',
            name='telegram_bot_id',
            field=fields.BigIntField(null=True, unique=True),
        ),
        ops.AddField(
            model_name='Company',
            name='telegram_bot_username',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Company',
            name='telegram_bot_key',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.AddField(
            model_name='Company',
            name='telegram_bot_revoked_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Client',
            name='telegram_bot_id',
            field=fields.BigIntField(null=True),
        ),
    ]
