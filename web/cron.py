"""Cron jobs, scheduled at start-up (never at import: aiocron binds the running loop)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, tzinfo

import aiocron
from aiohttp import web
from cronsim import CronSim
from prometheus_client import Counter
from tzlocal import get_localzone

from bot.alerts import alert_text
from bot.dialog import Reply
from core.bookings.sync import SyncReport, sync_all
from core.locks import run_exclusive
from core.models import Company
from core.notifications import notify_committed
from core.whatsapp import watchdog
from web.keys import METRICS, NOTIFIER, OUTBOUND, SETTINGS, WHATSAPP, YCLIENTS

log = logging.getLogger(__name__)

# A timer may fire a little before its minute (the loop's clock and the wall clock drift
# apart over days): a run this close to the next scheduled time belongs to it.
_EARLY = timedelta(seconds=10)


def scheduled_tick(spec: str, now: datetime, tz: tzinfo | None = None) -> datetime:
    """The scheduled time of `spec` a run at `now` belongs to: the latest one at or before
    `now` (give or take `_EARLY`), in the zone aiocron reads the spec in (the local one).
    Each replica fires when its own clock reads that time, so every replica's run of one tick
    names the same instant, whatever their clocks' skew."""
    local = (now + _EARLY).astimezone(tz or get_localzone())
    # CronSim in reverse skips its start when that is a whole second: start just after it.
    start = local.replace(microsecond=0) + timedelta(microseconds=1)
    return next(CronSim(spec, start, reverse=True)).astimezone(UTC)


async def sync_tick(
    app: web.Application, now: datetime | None = None, *, scheduled: bool = False
) -> SyncReport | None:
    """One run of the booking sync over every active salon, once across replicas; a
    `scheduled` run is skipped when its tick of `YCLIENTS_SYNC_CRON` has run already."""
    client = app[YCLIENTS]
    if client is None:
        return None
    settings = app[SETTINGS]
    now = now or datetime.now(UTC)
    tick = scheduled_tick(settings.yclients_sync_cron, now) if scheduled else None
    application_id = settings.yclients_app_id
    ran, report = await run_exclusive(
        "yclients-sync",
        lambda: sync_all(client, now=now, application_id=application_id),
        tick=tick,
    )
    if not ran or report is None:
        return None
    changes = [change for synced in report.synced.values() for change in synced.changes]
    if changes:
        await notify_committed(app[NOTIFIER], changes)
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
            report = await sync_tick(app, scheduled=True)
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


# Every five minutes: often enough that clients are not left unanswered for long, rarely
# enough that capped restarts (core.whatsapp.watchdog) spread over hours.
WATCHDOG_CRON = "*/5 * * * *"


async def watchdog_tick(
    app: web.Application, now: datetime | None = None, *, scheduled: bool = False
) -> watchdog.WatchdogReport | None:
    """One look at every active salon's WhatsApp session, once across replicas (a
    `scheduled` run once per tick of WATCHDOG_CRON); the salon's admins hear of an outage on
    the channel they use (bot.outbound; it is logged and audited anyway)."""
    gateway = app[WHATSAPP]
    if gateway is None:
        return None
    now = now or datetime.now(UTC)
    ran, report = await run_exclusive(
        "whatsapp-watchdog",
        lambda: watchdog.check_sessions(gateway, now=now),
        tick=scheduled_tick(WATCHDOG_CRON, now) if scheduled else None,
    )
    if not ran or report is None:
        return None
    for alert in report.alerts:
        await _tell_admins(app, alert)
    log.info(
        "whatsapp watchdog: %d session(s) checked, %d restarted, %d alert(s)",
        report.checked,
        len(report.restarted),
        len(report.alerts),
    )
    return report


async def _tell_admins(app: web.Application, alert: watchdog.Alert) -> None:
    """Through bot.outbound: each admin on the channel they use (Telegram first, since the
    salon's WhatsApp is what the alert is about); a salon without admins tells its staff."""
    company = await Company.get_or_none(id=alert.company_id)
    if company is None:
        return
    salon = company.title or str(company.yclients_id)
    reached = await app[OUTBOUND].to_admins(
        company.id, lambda locale: [Reply(alert_text(alert, locale, salon))]
    )
    if not reached:
        log.warning("whatsapp watchdog: no staff of salon %s could be told", company.id)


async def whatsapp_watchdog_ctx(app: web.Application) -> AsyncIterator[None]:
    if app[WHATSAPP] is None:
        yield
        return

    async def tick() -> None:
        try:
            await watchdog_tick(app, scheduled=True)
        except Exception:  # the schedule must survive a bad tick
            log.exception("whatsapp watchdog tick crashed")

    job = aiocron.crontab(WATCHDOG_CRON, func=tick, start=False)
    job.start()
    yield
    job.stop()
