"""Tortoise ORM set-up and the built-in migrations (never generate_schemas outside tests)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.executor import MigrationExecutor

log = logging.getLogger(__name__)

APPS: dict[str, dict[str, Any]] = {
    "models": {
        "models": ["core.models"],
        "migrations": "core.migrations",
        "default_connection": "default",
    }
}


async def keep_session(connection: Any) -> None:
    """asyncpg's pool `reset`, run as a connection goes back to the pool: nothing.

    asyncpg's default sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL` on every release, a round trip that was a tenth of a webhook's CPU in the server
    and more in PostgreSQL (bench/webhooks.py). This code leaves none of that state behind:
    it never LISTENs, SETs or declares WITH HOLD cursors, and its one session-level advisory
    lock (core.locks) is released by its holder, which closes the connection instead if the
    release fails. asyncpg still rolls back a transaction left open, whatever this does.
    """


def tortoise_config(db_url: str, *, pool_size: int | None = None) -> dict[str, Any]:
    connection: str | dict[str, Any] = db_url
    if db_url.startswith(("postgres://", "asyncpg://")):
        connection = expand_db_url(db_url)
        connection["credentials"]["reset"] = keep_session
        if pool_size:
            connection["credentials"] |= {"minsize": 1, "maxsize": pool_size}
    return {
        "connections": {"default": connection},
        "apps": APPS,
        "use_tz": True,
        "timezone": "UTC",
    }


# For Tortoise's own CLI only (`make migrations` runs `tortoise -c core.db.TORTOISE_ORM
# makemigrations`): the autodetector compares models with migration files, no database needed.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")


async def init_orm(db_url: str, *, pool_size: int | None = None) -> None:
    if db_url.startswith("sqlite://") and ":memory:" not in db_url:
        Path(db_url.removeprefix("sqlite://").split("?", 1)[0]).parent.mkdir(
            parents=True, exist_ok=True
        )
    # The global fallback lets aiohttp handler tasks, started outside the task that ran
    # this, see the same ORM context.
    await Tortoise.init(
        config=tortoise_config(db_url, pool_size=pool_size), _enable_global_fallback=True
    )


async def close_orm() -> None:
    await Tortoise.close_connections()


def _executor() -> MigrationExecutor:
    return MigrationExecutor(connections.get("default"), APPS)


async def migrate() -> list[str]:
    """Apply pending migrations; returns the names applied."""
    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app_label}.{name}")
            log.info("applied migration %s.%s", app_label, name)

    await _executor().migrate(progress=progress)
    return applied


async def pending_migrations() -> list[str]:
    plan = await _executor().plan()
    return [f"{s.migration.app_label}.{s.migration.name}" for s in plan if not s.backward]


async def unmigrated_model_changes() -> list[str]:
    """Operations the models need that no migration file holds yet (should be empty)."""
    detector = MigrationAutodetector(Tortoise.apps, APPS)
    return [str(op) for writer in await detector.changes() for op in writer.operations]


async def ping() -> None:
    await connections.get("default").execute_query("SELECT 1")


def dialect() -> str:
    return str(connections.get("default").capabilities.dialect)


async def execute(sql: str) -> None:
    await connections.get("default").execute_script(sql)
