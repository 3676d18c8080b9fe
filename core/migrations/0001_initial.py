from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from core.models import BookingStatus, InboxStatus, IntegrationStatus, LedgerKind, StaffRole
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Company',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('yclients_id', fields.BigIntField(unique=True)),
                ('title', fields.CharField(default='', max_length=255)),
                ('timezone', fields.CharField(default='Europe/Moscow', max_length=64)),
                ('integration_status', fields.CharEnumField(default=IntegrationStatus.PENDING_WHATSAPP, description='PENDING_WHATSAPP: pending_whatsapp\nACTIVE: active\nFROZEN: frozen\nUNINSTALLED: uninstalled', enum_type=IntegrationStatus, max_length=32)),
                ('marketplace_user_id', fields.BigIntField(null=True)),
                ('marketplace_user_name', fields.CharField(null=True, max_length=255)),
                ('marketplace_user_email', fields.CharField(null=True, max_length=255)),
                ('marketplace_user_phone', fields.CharField(null=True, max_length=32)),
                ('api_key_hash', fields.CharField(null=True, unique=True, max_length=64)),
                ('hook_token', fields.CharField(unique=True, max_length=64)),
                ('bookform_url', fields.CharField(null=True, max_length=512)),
                ('whatsapp_session', fields.CharField(null=True, unique=True, max_length=64)),
                ('whatsapp_connected', fields.BooleanField(default=False)),
                ('whatsapp_phone', fields.CharField(null=True, max_length=32)),
                ('accrual_percent', fields.SmallIntField(default=5)),
                ('welcome_bonus', fields.IntField(default=0)),
                ('max_redeem_percent', fields.SmallIntField(default=30)),
                ('default_locale', fields.CharField(default='ru', max_length=8)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'company', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Client',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='clients', on_delete=OnDelete.CASCADE)),
                ('phone', fields.CharField(null=True, max_length=16)),
                ('name', fields.CharField(default='', max_length=255)),
                ('email', fields.CharField(null=True, max_length=255)),
                ('yclients_client_id', fields.BigIntField(null=True)),
                ('telegram_user_id', fields.BigIntField(null=True)),
                ('whatsapp_chat_id', fields.CharField(null=True, max_length=64)),
                ('locale', fields.CharField(null=True, max_length=8)),
                ('code', fields.CharField(unique=True, max_length=9)),
                ('balance', fields.IntField(default=0)),
                ('last_channel', fields.CharField(null=True, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'client', 'app': 'models', 'unique_together': (('company', 'phone'), ('company', 'telegram_user_id'), ('company', 'whatsapp_chat_id')), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Booking',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='bookings', on_delete=OnDelete.CASCADE)),
                ('yclients_record_id', fields.BigIntField()),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', null=True, db_constraint=True, to_field='id', related_name='bookings', on_delete=OnDelete.SET_NULL)),
                ('visit_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('services', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('staff_name', fields.CharField(default='', max_length=255)),
                ('cost', fields.IntField(default=0)),
                ('status', fields.CharEnumField(default=BookingStatus.PENDING, description='PENDING: pending\nCONFIRMED: confirmed\nCOMPLETED: completed\nNO_SHOW: no_show\nCANCELLED: cancelled', enum_type=BookingStatus, max_length=16)),
                ('attendance', fields.SmallIntField(default=0)),
                ('deleted', fields.BooleanField(default=False)),
                ('last_change_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'booking', 'app': 'models', 'unique_together': (('company', 'yclients_record_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InboxEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.CharField(max_length=16)),
                ('dedupe_key', fields.CharField(max_length=255)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', null=True, db_constraint=True, to_field='id', related_name='inbox', on_delete=OnDelete.SET_NULL)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=InboxStatus.PENDING, description='PENDING: pending\nDONE: done\nDEAD: dead', enum_type=InboxStatus, max_length=16)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('processed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
                ('last_error', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'inbox_event', 'app': 'models', 'unique_together': (('source', 'dedupe_key'),), 'indexes': [Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'Every inbound webhook, stored before it is acted on.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MarketplaceEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', null=True, db_constraint=True, to_field='id', related_name='marketplace_events', on_delete=OnDelete.SET_NULL)),
                ('kind', fields.CharField(max_length=32)),
                ('details', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'marketplace_event', 'app': 'models', 'pk_attr': 'id', 'table_description': "Audit log of a salon's marketplace lifecycle."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Staff',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='staff', on_delete=OnDelete.CASCADE)),
                ('telegram_user_id', fields.BigIntField(null=True)),
                ('phone', fields.CharField(null=True, max_length=16)),
                ('name', fields.CharField(default='', max_length=255)),
                ('role', fields.CharEnumField(default=StaffRole.STAFF, description='STAFF: staff\nADMIN: admin', enum_type=StaffRole, max_length=16)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'staff', 'app': 'models', 'unique_together': (('company', 'telegram_user_id'), ('company', 'phone')), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LedgerEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='ledger', on_delete=OnDelete.CASCADE)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='ledger', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='ACCRUAL: accrual\nREDEMPTION: redemption\nREVERSAL: reversal\nMANUAL: manual\nWELCOME: welcome\nEXPIRY: expiry', enum_type=LedgerKind, max_length=16)),
                ('amount', fields.IntField()),
                ('balance_after', fields.IntField()),
                ('booking', fields.ForeignKeyField('models.Booking', source_field='booking_id', null=True, db_constraint=True, to_field='id', related_name='ledger', on_delete=OnDelete.SET_NULL)),
                ('staff', fields.ForeignKeyField('models.Staff', source_field='staff_id', null=True, db_constraint=True, to_field='id', related_name='ledger', on_delete=OnDelete.SET_NULL)),
                ('idempotency_key', fields.CharField(unique=True, max_length=128)),
                ('reason', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'ledger_entry', 'app': 'models', 'indexes': [Index(fields=['client_id', 'id'])], 'pk_attr': 'id', 'table_description': 'Append-only: a correction is a new entry, never an update.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SyncState',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.OneToOneField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='sync_state', on_delete=OnDelete.CASCADE)),
                ('changed_after', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_run_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_status', fields.CharField(default='never', max_length=16)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('last_stats', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'sync_state', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        # Tortoise 1.1's CreateModel does not emit Meta.constraints, so the CHECK is its own step.
        ops.AddConstraint(
            model_name='Client',
            constraint=CheckConstraint(check='balance >= 0', name='client_balance_nonnegative'),
        ),
    ]
