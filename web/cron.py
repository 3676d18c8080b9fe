"""Cron jobs, scheduled at start-up (never at import: aiocron binds the running loop)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiocron
from aiohttp import web
from prometheus_client import Counter

from core.locks import run_exclusive
from core.notifications import BalanceNotice
from core.sync import SyncReport, sync_all
from web.keys import METRICS, NOTIFIER, SETTINGS, YCLIENTS

log = logging.getLogger(__name__)


async def sync_tick(app: web.Application) -> SyncReport | None:
    """One run of the booking sync over every active salon, once across replicas."""
    client = app[YCLIENTS]
    if client is None:
        return None
    application_id = app[SETTINGS].yclients_app_id
    ran, report = await run_exclusive(
        "yclients-sync",
        lambda: sync_all(client, now=datetime.now(UTC), application_id=application_id),
    )
    if not ran or report is None:
        return None
    notices = [BalanceNotice.from_result(c) for s in report.synced.values() for c in s.changes]
    if notices:
        await app[NOTIFIER].notify(notices)
    log.info("sync: %d salon(s) synced, %d failed", len(report.synced), len(report.failed))
    return report


async def sync_cron_ctx(app: web.Application) -> AsyncIterator[None]:
    if app[YCLIENTS] is None:
        yield
        return
    failures = Counter(
        "salonbot_sync_failures_total",
        "Salons whose scheduled sync failed",
        registry=app[METRICS].registry,
    )

    async def tick() -> None:
        try:
            report = await sync_tick(app)
        except Exception:  # the schedule must survive a bad tick
            log.exception("sync tick crashed")
            failures.inc()
            return
        if report is not None:
            failures.inc(len(report.failed))

    job = aiocron.crontab(app[SETTINGS].yclients_sync_cron, func=tick, start=False)
    job.start()
    yield
    job.stop()
