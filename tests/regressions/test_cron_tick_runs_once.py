"""The cron guard (an advisory lock) stopped overlapping runs, but a replica whose clock lags
fired the same tick again once the first replica's run was over, and it ran twice. A scheduled
run now names its tick, and a tick already run is skipped (`core.locks.claim_tick`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from core.bookings.sync import SyncReport
from core.locks import run_exclusive
from core.models import CronTick
from core.settings import Settings
from core.whatsapp import watchdog
from web import cron
from web.cron import scheduled_tick, sync_tick, watchdog_tick
from web.keys import SETTINGS, WHATSAPP, YCLIENTS

NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_every_replica_names_the_same_tick_whatever_its_clock() -> None:
    every_half_hour = "*/30 * * * *"
    for fired in (
        NOON,
        NOON + timedelta(milliseconds=3),  # a timer a little late
        NOON - timedelta(milliseconds=3),  # or a little early
        NOON + timedelta(minutes=7),  # a busy loop
    ):
        assert scheduled_tick(every_half_hour, fired, UTC) == NOON, fired
    assert scheduled_tick(every_half_hour, NOON - timedelta(minutes=1), UTC) == NOON - timedelta(
        minutes=30
    )
    # Read in the zone aiocron reads the spec in: 03:00 in Moscow is midnight UTC.
    moscow = ZoneInfo("Europe/Moscow")
    at_three = datetime(2026, 11, 20, 0, 0, 2, tzinfo=UTC)
    assert scheduled_tick("0 3 * * *", at_three, moscow) == datetime(2026, 11, 20, tzinfo=UTC)


async def test_a_tick_already_run_is_skipped_on_both_databases(orm: str) -> None:
    runs: list[str] = []

    async def job() -> str:
        runs.append("ran")
        return "done"

    assert await run_exclusive("job", job, tick=NOON) == (True, "done")
    assert await run_exclusive("job", job, tick=NOON) == (False, None)
    assert await run_exclusive("job", job, tick=NOON - timedelta(minutes=30)) == (False, None)
    assert await run_exclusive("other", job, tick=NOON) == (True, "done")
    assert await run_exclusive("job", job) == (True, "done")  # by hand: no tick
    assert await run_exclusive("job", job, tick=NOON + timedelta(minutes=30)) == (True, "done")
    assert len(runs) == 4
    assert (await CronTick.get(name="job")).tick == NOON + timedelta(minutes=30)


async def test_a_lagging_replica_does_not_run_the_sync_or_watchdog_tick_again(
    orm: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[datetime] = []
    looked: list[datetime] = []

    async def fake_sync_all(client: Any, *, now: datetime, application_id: Any) -> SyncReport:
        synced.append(now)
        return SyncReport()

    async def fake_check(gateway: Any, *, now: datetime) -> watchdog.WatchdogReport:
        looked.append(now)
        return watchdog.WatchdogReport()

    monkeypatch.setattr(cron, "sync_all", fake_sync_all)
    monkeypatch.setattr(watchdog, "check_sessions", fake_check)
    app = web.Application()
    app[SETTINGS] = settings.model_copy(update={"yclients_sync_cron": "*/30 * * * *"})
    app[YCLIENTS] = cast(Any, object())
    app[WHATSAPP] = cast(Any, object())

    # The replica with the right clock runs the noon tick; one 40 s behind fires when its own
    # clock says noon, after the first is done; one slightly early fires just before.
    for fired in (NOON, NOON + timedelta(milliseconds=200), NOON - timedelta(milliseconds=5)):
        await sync_tick(app, fired, scheduled=True)
        await watchdog_tick(app, fired, scheduled=True)
    assert synced == [NOON] and looked == [NOON]
    # The next ticks run once each: the watchdog's every 5 minutes, the sync's every 30.
    later = NOON + timedelta(minutes=30)
    for fired in (NOON + timedelta(minutes=5), later, later + timedelta(seconds=1)):
        await sync_tick(app, fired, scheduled=True)
        await watchdog_tick(app, fired, scheduled=True)
    assert synced == [NOON, later]
    assert looked == [NOON, NOON + timedelta(minutes=5), later]
    # A run by hand (not scheduled) is not a tick.
    assert await sync_tick(app, later) is not None
    assert len(synced) == 3
