"""`salonbot check`: a plain verdict per part, and the fix for a failure."""

from __future__ import annotations

from dataclasses import dataclass

from core import db
from core.parts import parts
from core.settings import Settings


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str  # "ok", "off" or "fail"
    detail: str
    fix: str = ""


async def check_database(settings: Settings) -> CheckResult:
    backend = "PostgreSQL" if settings.uses_postgres else f"SQLite ({settings.db_url[9:]})"
    try:
        await db.init_orm(settings.db_url)
        try:
            await db.ping()
            pending = await db.pending_migrations()
        finally:
            await db.close_orm()
    except Exception as exc:
        fix = (
            "check DATABASE_URL and that the server is running and accepts this user"
            if settings.uses_postgres
            else "check that DATA_DIR is writable"
        )
        return CheckResult("database", "fail", f"{backend}: {type(exc).__name__}: {exc}", fix)
    if pending:
        return CheckResult(
            "database",
            "fail",
            f"{backend}: {len(pending)} migration(s) not applied",
            "run `salonbot migrate` (serve applies them too)",
        )
    return CheckResult("database", "ok", f"{backend}, migrations current")


async def run_checks(settings: Settings) -> list[CheckResult]:
    results = [CheckResult("settings", "ok", "read from the environment and .env")]
    results.append(await check_database(settings))
    for part in parts(settings):
        if not part.enabled:
            results.append(CheckResult(part.name, "off", part.reason))
        else:
            results.append(CheckResult(part.name, "ok", "configured"))
    return results
