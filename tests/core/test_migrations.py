from __future__ import annotations

from core import db
from tests.conftest import BACKEND


async def test_migrations_build_the_schema_and_models_have_no_unmigrated_changes(orm: str) -> None:
    # The session fixture migrated an empty database of this run's backend with core.db.migrate.
    assert db.dialect() == ("postgres" if BACKEND == "postgres" else "sqlite")
    assert await db.pending_migrations() == []
    assert await db.unmigrated_model_changes() == []
    assert await db.migrate() == []  # applying again is a no-op
