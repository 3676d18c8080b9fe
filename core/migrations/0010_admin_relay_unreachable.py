from json import dumps, loads
from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from datetime import UTC

# Issues 14-15: what a staff member's reply to a client's question is routed by (admin_relay);
# a blocked Telegram chat is recorded once, in client.unreachable (copied over, then the old
# telegram_unreachable_at column goes).


async def move_telegram_marks(apps, schema_editor) -> None:
    conn = schema_editor.client
    rows = await conn.execute_query_dict(
        "SELECT id, unreachable, telegram_unreachable_at FROM client "
        "WHERE telegram_unreachable_at IS NOT NULL"
    )
    for row in rows:
        marks = row["unreachable"]
        marks = loads(marks) if isinstance(marks, str) else dict(marks or {})
        at = row["telegram_unreachable_at"]
        if hasattr(at, "isoformat"):
            at = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
        marks.setdefault("telegram", str(at))
        await conn.execute_query(
            "UPDATE client SET unreachable = " + ("$1" if conn.capabilities.dialect == "postgres" else "?")
            + " WHERE id = " + ("$2" if conn.capabilities.dialect == "postgres" else "?"),
            [dumps(marks), row["id"]],
        )


# As in 0005: a table rebuild on SQLite loses the client's unique constraints; put them back.
_CLIENT_UNIQUES = (
    ("uniq_client_company_phone", "company_id, phone"),
    ("uniq_client_company_telegram", "company_id, telegram_user_id"),
    ("uniq_client_company_whatsapp", "company_id, whatsapp_chat_id"),
)


async def restore_sqlite_client_uniques(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect != "sqlite":
        return
    for name, columns in _CLIENT_UNIQUES:
        await schema_editor.client.execute_script(
            f'CREATE UNIQUE INDEX IF NOT EXISTS "{name}" ON "client" ({columns})'
        )


class Migration(migrations.Migration):
    dependencies = [('models', '0009_salon_settings_visit_loop')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AdminRelay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('company', fields.ForeignKeyField('models.Company', source_field='company_id', db_constraint=True, to_field='id', related_name='admin_relays', on_delete=OnDelete.CASCADE)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='admin_relays', on_delete=OnDelete.CASCADE)),
                ('staff', fields.ForeignKeyField('models.Staff', source_field='staff_id', null=True, db_constraint=True, to_field='id', related_name='admin_relays', on_delete=OnDelete.SET_NULL)),
                ('channel', fields.CharField(max_length=16)),
                ('chat', fields.CharField(max_length=64)),
                ('message_id', fields.CharField(max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'admin_relay', 'app': 'models', 'unique_together': (('channel', 'chat', 'message_id'),), 'pk_attr': 'id', 'table_description': "A client's question as it reached one of the salon's staff: the message the staff"},
            bases=['Model'],
        ),
        ops.RunPython(move_telegram_marks, ops.RunPython.noop),
        ops.RemoveField(model_name='Client', name='telegram_unreachable_at'),
        ops.RunPython(restore_sqlite_client_uniques, ops.RunPython.noop),
    ]
