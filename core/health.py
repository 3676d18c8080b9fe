"""The facts /health, /marketplace/health and `salonbot check` report.

Dead inbox events (webhooks that failed `max_attempts` times) make the status "degraded" but
not a failure: the process itself is healthy and restarting it would not revive them, so
/health still answers 200 — the count is there for monitoring to alert on. A configured part
that cannot reach its outside system (the Bot API, the WhatsApp gateway) degrades the status the
same way: its channel retries with backoff (core.backoff) and reports into `PartStates`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError as RedisAuthenticationError
from redis.exceptions import RedisError

from core import db, inbox
from core.backoff import utcnow
from core.parts import Part, parts
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Failure:
    # What the part cannot do, in words; `error` is what the outside system or network said.
    reason: str
    error: str
    since: datetime


class PartStates:
    """What each running part last found out about its outside system, for /health.

    One per process (web.keys.PART_STATES). A part that goes down is logged once (WARNING) and
    one that comes back once (INFO), however often its retry loop reports in between.
    """

    def __init__(self, now: Callable[[], datetime] = utcnow) -> None:
        self._now = now
        self._failures: dict[str, Failure] = {}

    def failing(self, name: str, reason: str, error: str, *, retried: bool = True) -> None:
        current = self._failures.get(name)
        if current is None:
            then = "retrying with backoff" if retried else "not retried"
            log.warning("%s is down: %s (%s); %s", name, reason, error, then)
            self._failures[name] = Failure(reason, error, self._now())
        else:
            self._failures[name] = Failure(reason, error, current.since)

    def ok(self, name: str) -> None:
        failure = self._failures.pop(name, None)
        if failure is not None:
            log.info("%s is back (down since %s)", name, iso_utc(failure.since))

    def failure(self, name: str) -> Failure | None:
        return self._failures.get(name)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(part: Part, failure: Failure | None) -> dict[str, Any]:
    """One entry of /health's `parts` (and of /marketplace/health's `services`)."""
    if part.enabled and failure is not None:
        return {
            "enabled": True,
            "state": "failing",
            "reason": failure.reason,
            "error": failure.error,
            "since": iso_utc(failure.since),
        }
    return {"enabled": part.enabled, "state": part.state, "reason": part.reason}


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
        failing = any(p.get("state") == "failing" for p in self.parts.values())
        return failing or bool(self.inbox and self.inbox.get("dead"))

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


async def collect(settings: Settings, states: PartStates | None = None) -> Health:
    """`states` from the running process; without it (`salonbot check`) parts are as
    configured."""
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
            p.name: describe(p, states.failure(p.name) if states else None) for p in parts(settings)
        },
        inbox=inbox_counts,
    )


@dataclass(frozen=True, slots=True)
class RedisProblem:
    detail: str
    fix: str


async def redis_problem(url: str, *, wait: float = 3.0) -> RedisProblem | None:
    """A real PING to REDIS_URL: None when Redis answers, else what is wrong and the fix.

    The detail names the host and port, never the URL itself (it may carry a password)."""
    try:
        client = Redis.from_url(url, socket_connect_timeout=wait, socket_timeout=wait)
    except ValueError as exc:
        return RedisProblem(
            f"REDIS_URL is not a Redis URL ({exc})",
            "use redis://host:6379/0 (redis://redis:6379/0 under compose; rediss:// for TLS)",
        )
    try:
        answer = await asyncio.wait_for(client.ping(), wait)
    except RedisAuthenticationError:
        return RedisProblem(
            f"Redis at {_redis_address(url)} refused the password",
            "put the right password into REDIS_URL (redis://:password@host:6379/0)",
        )
    except (RedisError, OSError, TimeoutError) as exc:
        log.debug("redis: PING failed", exc_info=True)
        return RedisProblem(
            f"Redis at {_redis_address(url)} does not answer ({type(exc).__name__})",
            "check REDIS_URL and that Redis runs and this host reaches it",
        )
    finally:
        await client.aclose()
    if answer is not True:
        return RedisProblem(
            f"{_redis_address(url)} answered PING with {answer!r}",
            "check REDIS_URL points at a Redis server",
        )
    return None


def _redis_address(url: str) -> str:
    parsed = urlsplit(url)
    if parsed.scheme == "unix":
        return parsed.path
    return f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"
