from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

# InboxEvent.company loses its database foreign key (see the model for why).
#
# On PostgreSQL the constraint is dropped by hand, found by table and column rather than by
# name. Tortoise's own AlterField is not used on the database: on PostgreSQL it leaves the
# constraint in place, and on SQLite it rebuilds the table without the unique
# (source, dedupe_key) and the status index that the inbox depends on. SQLite, which has one
# writer and so no lock contention, keeps its REFERENCES clause; the model state changes on
# both.

_FIND_FK = """
SELECT c.conname FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
WHERE c.conrelid = 'inbox_event'::regclass AND c.contype = 'f' AND a.attname = 'company_id'
"""


async def drop_postgres_fk(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    for row in await client.execute_query_dict(_FIND_FK):
        await client.execute_script(f'ALTER TABLE inbox_event DROP CONSTRAINT "{row["conname"]}"')


async def restore_postgres_fk(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await client.execute_script(
        "UPDATE inbox_event SET company_id = NULL"
        " WHERE company_id IS NOT NULL AND company_id NOT IN (SELECT id FROM company);"
        " ALTER TABLE inbox_event ADD CONSTRAINT inbox_event_company_id_fkey"
        " FOREIGN KEY (company_id) REFERENCES company (id) ON DELETE SET NULL"
    )


class AlterFieldState(ops.AlterField):
    """AlterField on the migration state only; the database change is the RunPython."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None


class Migration(migrations.Migration):
    dependencies = [('models', '0005_ledger_booking_index_sqlite_uniques')]

    initial = False

    operations = [
        AlterFieldState(
            model_name='InboxEvent',
            name='company',
            field=fields.ForeignKeyField('models.Company', source_field='company_id', null=True, db_constraint=False, to_field='id', related_name='inbox', on_delete=OnDelete.NO_ACTION),
        ),
        ops.RunPython(drop_postgres_fk, restore_postgres_fk),
    ]
