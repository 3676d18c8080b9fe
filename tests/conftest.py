"""Test database set-up: the same suite runs on SQLite and on PostgreSQL.

`SALONBOT_TEST_DB=sqlite` (default) or `postgres` picks the backend. Each run gets a fresh
database built by the real migrations; each test starts from empty tables. On PostgreSQL the
server from `TEST_POSTGRES_DSN` is used; when it is down the run fails under `CI=true` and is
skipped with a clear reason elsewhere.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from core import db
from core.settings import Settings, load_settings

BACKEND = os.environ.get("SALONBOT_TEST_DB", "sqlite")
ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
TABLES = (
    # Children before parents (SQLite deletes in this order). A new table goes here too.
    "admin_relay",
    "setting_change",
    "visit_review",
    "scheduled_message",
    "cron_tick",
    "marketplace_redirect_use",
    "pending_api_key",
    "whatsapp_chat",
    "max_chat",
    "staff_invite",
    "ledger_entry",
    "inbox_event",
    "marketplace_event",
    "sync_state",
    "booking",
    "staff",
    "client",
    "company",
)


def pytest_report_header() -> str:
    return f"salonbot test database: {BACKEND}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND != "postgres":
        skip = pytest.mark.skip(
            reason="needs PostgreSQL (runs in the SALONBOT_TEST_DB=postgres pass)"
        )
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


async def _create_pg_database() -> str:
    name = f"salonbot_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL is not reachable at {ADMIN_DSN}: {exc}"
        if IN_CI:
            pytest.exit(f"{message} (required when CI=true)", returncode=1)
        pytest.skip(f"{message} — start it to run the PostgreSQL pass", allow_module_level=True)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def _drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A fresh, migrated database for this run."""
    if BACKEND == "postgres":
        url = await _create_pg_database()
    else:
        url = f"sqlite://{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    await db.init_orm(url)
    await db.migrate()
    await db.close_orm()
    yield url
    if BACKEND == "postgres":
        await _drop_pg_database(url)


async def truncate_all() -> None:
    if db.dialect() == "postgres":
        await db.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    else:
        for table in TABLES:
            await db.execute(f"DELETE FROM {table}")
        await db.execute("DELETE FROM sqlite_sequence")


@pytest.fixture
async def clean_db(database_url: str) -> str:
    """The run's database with empty tables (for tests that start the app themselves)."""
    await db.init_orm(database_url)
    await truncate_all()
    await db.close_orm()
    return database_url


@pytest.fixture
async def orm(clean_db: str) -> AsyncIterator[str]:
    """Empty tables and the ORM initialised for the test body."""
    await db.init_orm(clean_db, pool_size=16)
    yield clean_db
    await db.close_orm()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(clean_db: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for an app on the test database, with no `.env` and no outside tokens."""
    for name in list(os.environ):
        if name.startswith(("TELEGRAM_", "YCLIENTS_", "WHATSAPP_", "MARKETPLACE_")) or name in {
            "DATABASE_URL",
            "SECRET_KEY",
            "PUBLIC_BASE_URL",
            "REDIS_URL",
        }:
            monkeypatch.delenv(name)
    monkeypatch.chdir(data_dir.parent)
    yield load_settings(
        _env_file=None,
        database_url=clean_db,
        data_dir=data_dir,
        secret_key="s" * 48,
        http_port=0,
    )
