"""Run a job at most once at a time across replicas, and a scheduled tick at most once.

On PostgreSQL a session-level advisory lock, held on one pooled connection for the job's
duration (a crashed replica's lock goes with its connection); on SQLite — one process by
design — an in-process lock. The lock alone stops overlapping runs, not a second run of the
same tick by a replica whose clock lags and fires after the first run is over: a scheduled
run names its tick, and a tick already run (`CronTick`, a compare-and-set) is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from tortoise import connections
from tortoise.exceptions import IntegrityError

from core.models import CronTick

log = logging.getLogger(__name__)
T = TypeVar("T")

_process_locks: dict[str, asyncio.Lock] = {}


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def claim_tick(name: str, tick: datetime) -> bool:
    """Record `tick` as `name`'s last run; False when that tick (or a later one) already ran.
    A compare-and-set, so it holds even without the job's lock."""
    if await CronTick.filter(name=name, tick__lt=tick).update(tick=tick):
        return True
    try:
        await CronTick.create(name=name, tick=tick)
    except IntegrityError:
        return False
    return True


async def run_exclusive(
    name: str, job: Callable[[], Awaitable[T]], *, tick: datetime | None = None
) -> tuple[bool, T | None]:
    """(True, result) when this process ran the job; (False, None) when another held it or,
    for a scheduled run (`tick`, the scheduled time it belongs to), when that tick has run."""
    client = connections.get("default")
    if client.capabilities.dialect != "postgres":
        lock = _process_locks.setdefault(name, asyncio.Lock())
        if lock.locked():
            return False, None
        async with lock:
            if tick is not None and not await claim_tick(name, tick):
                log.info("%s: skipped, the tick of %s has run", name, tick.isoformat())
                return False, None
            return True, await job()
    key = lock_key(name)
    conn: Any
    async with client.acquire_connection() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            log.info("%s: skipped, another replica is running it", name)
            return False, None
        try:
            if tick is not None and not await claim_tick(name, tick):
                log.info("%s: skipped, the tick of %s has run", name, tick.isoformat())
                return False, None
            return True, await job()
        finally:
            try:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)
            except BaseException:
                # The pool does not reset sessions (core.db.keep_session): a lock that could
                # not be released must not go back to it. Closed, the session takes it along.
                conn.terminate()
                raise


async def is_held(name: str) -> bool:
    """Whether some process (this one included) is running `name` under run_exclusive now."""
    client = connections.get("default")
    if client.capabilities.dialect != "postgres":
        lock = _process_locks.get(name)
        return lock is not None and lock.locked()
    key = lock_key(name)
    conn: Any
    async with client.acquire_connection() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return True
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
        except BaseException:
            conn.terminate()  # as in run_exclusive: never pool a session holding the lock
            raise
        return False
