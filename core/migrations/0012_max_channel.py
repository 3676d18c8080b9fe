from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0011_scheduled_message_booking_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MaxChat',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.BigIntField(unique=True)),
                ('phone', fields.CharField(null=True, max_length=16)),
                ('state', fields.CharField(null=True, max_length=64)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'max_chat', 'app': 'models', 'pk_attr': 'id', 'table_description': "One person's dialog with the MAX bot (one Salonbot bot for every salon, so not per"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Client',
            name='max_user_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddConstraint(
            model_name='Client',
            constraint=UniqueConstraint(fields=('company', 'max_user_id'), name=None),
        ),
    ]
