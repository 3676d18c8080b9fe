"""Migration 0010 moves a "blocked the bot" mark (the old client.telegram_unreachable_at) into
client.unreachable, the one record bot.outbound reads, before the column goes — and on SQLite
the client's unique constraints survive the table rebuild."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pypika_tortoise import Table
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from core import db
from core.models import Client, Company
from tests.conftest import BACKEND, _create_pg_database, _drop_pg_database


@pytest.fixture
async def fresh_url(tmp_path: pytest.TempPathFactory) -> object:
    if BACKEND == "postgres":
        url = await _create_pg_database()
        yield url
        await _drop_pg_database(url)
    else:
        yield f"sqlite://{tmp_path}/migrate.sqlite3"  # type: ignore[operator]


async def insert_company_at_0009(conn: BaseDBAsyncClient) -> int:
    """A salon row with the model's defaults for the columns the table had at 0009."""
    if BACKEND == "postgres":
        rows = await conn.execute_query_dict(
            "SELECT column_name AS name FROM information_schema.columns "
            "WHERE table_name = 'company'"
        )
    else:
        rows = await conn.execute_query_dict("PRAGMA table_info(company)")
    present = {row["name"] for row in rows}
    probe = Company(yclients_id=1, title="S", hook_token="h")
    now = datetime.now(UTC).isoformat()
    values: dict[str, object] = {}
    for name, column in Company._meta.fields_db_projection.items():
        if column not in present or name == "id":
            continue
        value = Company._meta.fields_map[name].to_db_value(getattr(probe, name), probe)
        values[column] = now if name in ("created_at", "updated_at") else value
    query = conn.query_class.into(Table("company")).columns(*values).insert(*values.values())
    await conn.execute_query(query.get_sql())
    found = await conn.execute_query_dict("SELECT id FROM company WHERE yclients_id = 1")
    return int(found[0]["id"])


async def test_a_blocked_telegram_chat_is_still_known_after_the_migration(
    fresh_url: str,
) -> None:
    await db.init_orm(fresh_url)
    try:
        conn = connections.get("default")
        executor = MigrationExecutor(conn, db.APPS)
        await executor.migrate(
            targets=[MigrationTarget("models", "0009_salon_settings_visit_loop")]
        )
        # The tables as they were at 0009 (later migrations add columns to both): the rows
        # are written by hand.
        company_id = await insert_company_at_0009(conn)
        for code, phone in (("AAAAAAAAA", "+79990000001"), ("BBBBBBBBB", "+79990000002")):
            await conn.execute_query(
                "INSERT INTO client (company_id, name, code, balance, phone, unreachable, "
                "reminders_off, messages_off, created_at) VALUES "
                f"({company_id}, 'A', '{code}', 0, '{phone}', '{{}}', false, false, "
                "'2026-11-01 10:00:00+00:00')"
            )
        await conn.execute_query(
            "UPDATE client SET telegram_unreachable_at = '2026-11-20 10:00:00+00:00' "
            "WHERE code = 'AAAAAAAAA'"
        )
        await db.migrate()
        blocked = await Client.get(code="AAAAAAAAA")
        assert set(blocked.unreachable) == {"telegram"}
        assert blocked.unreachable["telegram"].startswith("2026-11-20")
        assert (await Client.get(code="BBBBBBBBB")).unreachable == {}
        # One card per salon and phone still holds after the column is gone.
        with pytest.raises(IntegrityError):
            await Client.create(company_id=company_id, phone="+79990000001", code="CCCCCCCCC")
    finally:
        await db.close_orm()
