"""Migration 0006 drops the inbox's foreign key to the salon on PostgreSQL (each stored webhook
took a KEY SHARE lock on its salon's row). Tortoise's own AlterField would have left that key in
place on PostgreSQL and rebuilt SQLite's table without the unique (source, dedupe_key) the
inbox's dedupe rests on: both must hold after the real migrations."""

from __future__ import annotations

import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError

from core import db
from core.models import Company, InboxEvent


async def test_one_event_per_source_and_key_and_no_foreign_key_on_postgres(orm: str) -> None:
    salon = await Company.create(yclients_id=1, hook_token="a")
    await InboxEvent.create(source="yclients", dedupe_key="k", payload={}, company=salon)
    await InboxEvent.create(source="whatsapp", dedupe_key="k", payload={})
    with pytest.raises(IntegrityError):
        await InboxEvent.create(source="yclients", dedupe_key="k", payload={})
    if db.dialect() != "postgres":
        return
    foreign_keys = await connections.get("default").execute_query_dict(
        "SELECT conname FROM pg_constraint"
        " WHERE conrelid = 'inbox_event'::regclass AND contype = 'f'"
    )
    assert foreign_keys == []
    # An event may name a salon id that no row holds (the handlers look it up and cope).
    await InboxEvent.create(source="yclients", dedupe_key="gone", payload={}, company_id=999)
