from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from core.models import StaffRole
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_company_catalogue')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StaffInvite',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='staff_invites', on_delete=OnDelete.CASCADE)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('role', fields.CharEnumField(default=StaffRole.STAFF, description='STAFF: staff\nADMIN: admin', enum_type=StaffRole, max_length=16)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('used_by', fields.ForeignKeyField('models.Staff', source_field='used_by_id', null=True, db_constraint=True, to_field='id', related_name='invites', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'staff_invite', 'app': 'models', 'pk_attr': 'id', 'table_description': "A single-use, expiring link for joining a salon's staff in Telegram (`staff-<token>`)."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Client',
            name='telegram_unreachable_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Staff',
            name='code_failures',
            field=fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Staff',
            name='locked_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
