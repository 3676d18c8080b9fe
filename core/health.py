"""The facts /health, /marketplace/health and `salonbot check` report.

Dead inbox events (webhooks that failed `max_attempts` times) make the status "degraded" but
not a failure: the process itself is healthy and restarting it would not revive them, so
/health still answers 200 — the count is there for monitoring to alert on.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from core import db, inbox
from core.parts import parts
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Health:
    database_ok: bool
    database_error: str | None
    backend: str
    pending_migrations: list[str]
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Inbox events per status; None when the database could not say.
    inbox: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return self.database_ok and not self.pending_migrations

    @property
    def degraded(self) -> bool:
        return bool(self.inbox and self.inbox.get("dead"))

    def as_dict(self) -> dict[str, Any]:
        status = "fail" if not self.ok else "degraded" if self.degraded else "ok"
        return {
            "status": status,
            "database": {
                "ok": self.database_ok,
                "backend": self.backend,
                **({"error": self.database_error} if self.database_error else {}),
            },
            "migrations": {
                "current": self.database_ok and not self.pending_migrations,
                "pending": self.pending_migrations,
            },
            "parts": self.parts,
            "inbox": self.inbox,
        }


async def collect(settings: Settings) -> Health:
    backend = "postgres" if settings.uses_postgres else "sqlite"
    try:
        await db.ping()
        pending = await db.pending_migrations()
        ok, error = True, None
    except Exception as exc:  # the report must say what failed, not fail itself
        log.warning("health: database check failed: %s", exc)
        ok, error, pending = False, f"{type(exc).__name__}: {exc}", []
    inbox_counts = None
    if ok and not pending:
        try:
            inbox_counts = await inbox.counts()
        except Exception as exc:
            log.warning("health: inbox counts unavailable: %s", exc)
    return Health(
        database_ok=ok,
        database_error=error,
        backend=backend,
        pending_migrations=pending,
        parts={
            p.name: {k: v for k, v in asdict(p).items() if k != "name"} for p in parts(settings)
        },
        inbox=inbox_counts,
    )
