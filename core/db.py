"""Tortoise ORM set-up and the built-in migrations (never generate_schemas outside tests)."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
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


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the database cannot be used, and what to do about it."""

    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}; {self.fix}"


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used; `failure` says why and what to do."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def _sqlite_path(db_url: str) -> str:
    return db_url.removeprefix("sqlite://").split("?", 1)[0]


def describe(exc: BaseException, db_url: str) -> Failure | None:
    """The failure an exception from connecting to `db_url` stands for, if it is one we can
    name (an unreachable server, a missing database, an unknown role…); None for the rest."""
    if isinstance(exc, DatabaseUnavailable):
        return exc.failure
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if not db_url.startswith(("postgres://", "asyncpg://")):
        for cause in chain:
            if isinstance(cause, sqlite3.OperationalError) and "unable to open" in str(cause):
                return Failure(
                    f"SQLite cannot open {_sqlite_path(db_url)}",
                    "check that DATA_DIR (or the path in DATABASE_URL) is a writable directory",
                )
        return None
    credentials = expand_db_url(db_url)["credentials"]
    where = f"PostgreSQL at {credentials.get('host')}:{credentials.get('port')}"
    user, name = credentials.get("user"), credentials.get("database")
    for cause in chain:
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            return Failure(
                f'{where} has no database "{name}"',
                f"create it (createdb -U {user} {name}) or fix the database name in DATABASE_URL",
            )
        if isinstance(cause, asyncpg.InvalidPasswordError):
            return Failure(
                f'{where} refused the password of role "{user}"',
                "fix the password in DATABASE_URL",
            )
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
            if "does not exist" in str(cause):
                return Failure(
                    f'{where} has no role "{user}"',
                    f"create it (createuser {user}) or fix the user in DATABASE_URL",
                )
            return Failure(
                f'{where} does not let role "{user}" in ({cause})',
                "allow it in pg_hba.conf or fix the user in DATABASE_URL",
            )
        if isinstance(cause, asyncpg.CannotConnectNowError):
            return Failure(f"{where} is starting up or shutting down", "try again in a moment")
        if isinstance(cause, asyncpg.TooManyConnectionsError):
            return Failure(
                f"{where} has no free connections", "try again, or raise max_connections"
            )
        if isinstance(cause, socket.gaierror):
            return Failure(
                f"the PostgreSQL host {credentials.get('host')!r} is unknown",
                "fix the host in DATABASE_URL",
            )
        if isinstance(cause, ConnectionRefusedError):
            return Failure(f"{where} refused the connection", "start it or fix DATABASE_URL")
        if isinstance(cause, TimeoutError):
            return Failure(
                f"{where} did not answer in time",
                "check that it runs and this machine reaches it, or fix DATABASE_URL",
            )
        if isinstance(cause, OSError) and cause.errno in (
            errno.EHOSTUNREACH,
            errno.ENETUNREACH,
            errno.ECONNRESET,
        ):
            return Failure(
                f"{where} cannot be reached ({cause.strerror})",
                "check the network or fix DATABASE_URL",
            )
    return None


def _prepare_sqlite(db_url: str) -> None:
    path = Path(_sqlite_path(db_url))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(
            Failure(
                f"the SQLite folder {path.parent} cannot be created ({exc.strerror})",
                "set DATA_DIR (or the path in DATABASE_URL) to a writable directory",
            )
        ) from exc
    # Opened here first: when aiosqlite fails to open a file, its worker thread reports to
    # an event loop that asyncio.run has already closed, a traceback after our sentence.
    try:
        sqlite3.connect(path).close()
    except sqlite3.Error as exc:
        failure = describe(exc, db_url)
        if failure is None:
            raise
        raise DatabaseUnavailable(failure) from exc


async def init_orm(db_url: str, *, pool_size: int | None = None) -> None:
    if db_url.startswith("sqlite://") and ":memory:" not in db_url:
        _prepare_sqlite(db_url)
    # The global fallback lets aiohttp handler tasks, started outside the task that ran
    # this, see the same ORM context.
    await Tortoise.init(
        config=tortoise_config(db_url, pool_size=pool_size), _enable_global_fallback=True
    )


async def connect(db_url: str, *, pool_size: int | None = None) -> None:
    """`init_orm` and one round trip: a failure we can name becomes DatabaseUnavailable here.

    Tortoise connects lazily, and its migration recorder reads a failed query as "nothing
    applied", so without this an unreachable server looked like unapplied migrations.
    """
    await init_orm(db_url, pool_size=pool_size)
    try:
        await ping()
    except Exception as exc:
        with contextlib.suppress(Exception):
            await close_orm()
        failure = describe(exc, db_url)
        if failure is None:
            raise
        raise DatabaseUnavailable(failure) from exc


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
