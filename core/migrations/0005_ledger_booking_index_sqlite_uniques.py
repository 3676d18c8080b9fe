from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

# Tortoise 1.1 rebuilds an SQLite table to add a CHECK constraint or a column, and the rebuilt
# `client` table lost its unique (company, phone/telegram/whatsapp) constraints. Restore them
# as unique indexes; PostgreSQL kept its constraints and is left alone.
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
    dependencies = [('models', '0004_whatsapp_chats_and_watchdog')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='LedgerEntry',
            index=Index(fields=['booking_id']),
        ),
        ops.RunPython(restore_sqlite_client_uniques, ops.RunPython.noop),
    ]
