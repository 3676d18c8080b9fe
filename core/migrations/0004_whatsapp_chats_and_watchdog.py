from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_staff_invites_and_unreachable_clients')]

    initial = False

    operations = [
        ops.CreateModel(
            name='WhatsAppChat',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='whatsapp_chats', on_delete=OnDelete.CASCADE)),
                ('chat_id', fields.CharField(max_length=64)),
                ('phone', fields.CharField(null=True, max_length=16)),
                ('state', fields.CharField(null=True, max_length=64)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('offered', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('lid_checked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('send_failed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('send_error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'whatsapp_chat', 'app': 'models', 'unique_together': (('company', 'chat_id'),), 'pk_attr': 'id', 'table_description': "One person's WhatsApp chat with one salon's number: where their conversation stands"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Company',
            name='whatsapp_alerted_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Company',
            name='whatsapp_restarts',
            field=fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
