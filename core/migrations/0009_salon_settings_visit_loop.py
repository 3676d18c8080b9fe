from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from core.models import ScheduledStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

# Issues 13-15: the salon's settings for the visit loop and digest (on company), their audit
# log, the visit loop's scheduled messages, after-visit reviews, and the client's say
# (reminders_off, messages_off) and channels that failed for good (unreachable).

class Migration(migrations.Migration):
    dependencies = [('models', '0008_cron_tick')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ScheduledMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='scheduled_messages', on_delete=OnDelete.CASCADE)),
                ('booking', fields.ForeignKeyField('models.Booking', source_field='booking_id', null=True, db_constraint=True, to_field='id', related_name='scheduled_messages', on_delete=OnDelete.CASCADE)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', null=True, db_constraint=True, to_field='id', related_name='scheduled_messages', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=24)),
                ('key', fields.CharField(unique=True, max_length=128)),
                ('due_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=ScheduledStatus.PENDING, description='PENDING: pending\nSENDING: sending\nSENT: sent\nDROPPED: dropped\nFAILED: failed', enum_type=ScheduledStatus, max_length=16)),
                ('attempts', fields.SmallIntField(default=0)),
                ('claimed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('channel', fields.CharField(null=True, max_length=16)),
                ('answer', fields.CharField(null=True, max_length=16)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('payload', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'scheduled_message', 'app': 'models', 'indexes': [Index(fields=['status', 'due_at'])], 'pk_attr': 'id', 'table_description': 'A message the salon sends unasked at `due_at`: a booking notice, a reminder, a'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SettingChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='setting_changes', on_delete=OnDelete.CASCADE)),
                ('actor', fields.CharField(max_length=64)),
                ('key', fields.CharField(max_length=48)),
                ('old_value', fields.TextField(default='', unique=False)),
                ('new_value', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'setting_change', 'app': 'models', 'pk_attr': 'id', 'table_description': "The salon's audit log of its settings: who changed which key from what to what."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VisitReview',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='reviews', on_delete=OnDelete.CASCADE)),
                ('booking', fields.OneToOneField('models.Booking', source_field='booking_id', null=True, db_constraint=True, to_field='id', related_name='review', on_delete=OnDelete.SET_NULL)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', null=True, db_constraint=True, to_field='id', related_name='reviews', on_delete=OnDelete.SET_NULL)),
                ('rating', fields.SmallIntField()),
                ('comment', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'visit_review', 'app': 'models', 'indexes': [Index(fields=['company_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A client\'s answer to "how was it?" about one visit.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Client',
            name='messages_off',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Client',
            name='reminders_off',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Client',
            name='unreachable',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Company',
            name='digest_at',
            field=fields.CharField(default='mon 10:00', max_length=9),
        ),
        ops.AddField(
            model_name='Company',
            name='quiet_hours',
            field=fields.CharField(default='21:00-09:00', max_length=11),
        ),
        ops.AddField(
            model_name='Company',
            name='reminder_day_before_at',
            field=fields.CharField(default='18:00', max_length=5),
        ),
        ops.AddField(
            model_name='Company',
            name='reminder_hours_before',
            field=fields.SmallIntField(default=2),
        ),
        ops.AddField(
            model_name='Company',
            name='review_delay_hours',
            field=fields.SmallIntField(null=True, default=2),
        ),
        ops.AddField(
            model_name='Company',
            name='review_url',
            field=fields.CharField(default='', max_length=512),
        ),
        ops.AddField(
            model_name='Company',
            name='silent_alert_hours_before',
            field=fields.SmallIntField(default=3),
        ),
    ]
