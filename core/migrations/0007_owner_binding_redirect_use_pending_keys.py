from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

# Issue 10: a salon's marketplace owner is bound (marketplace_owner_bound_at), a signed
# redirect's uses are remembered (marketplace_redirect_use), and api keys sent to YClients stay
# unconfirmed until one is proven (pending_api_key). Existing salons start unbound: their
# stored user is bound by that user's next signed redirect (core.onboarding.admit_redirect).


class Migration(migrations.Migration):
    dependencies = [('models', '0006_inbox_event_company_without_db_constraint')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Company',
            name='marketplace_owner_bound_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.CreateModel(
            name='RedirectUse',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('signature_hash', fields.CharField(max_length=64)),
                ('yclients_id', fields.BigIntField()),
                ('first_used_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'marketplace_redirect_use', 'app': 'models', 'unique_together': (('signature_hash', 'yclients_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PendingApiKey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='pending_api_keys', on_delete=OnDelete.CASCADE)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'pending_api_key', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
