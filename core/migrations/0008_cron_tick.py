from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0007_owner_binding_redirect_use_pending_keys')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CronTick',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('tick', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'cron_tick', 'app': 'models', 'pk_attr': 'name', 'table_description': 'The last tick of each cron job that ran, across replicas: a replica whose clock lags'},
            bases=['Model'],
        ),
    ]
