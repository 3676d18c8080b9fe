"""An older "came" and a newer "no-show" of one record, applied at the same moment (two
replicas' workers, the cron sync beside the worker), once left the bonus accrued: the newer one
committed its booking and found nothing to reverse before the older one, already committed,
wrote its accrual after the booking's lock was gone. The bonus is now settled inside the
transaction that holds the booking's row, so it follows the newest committed state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from tortoise.functions import Sum

from core import bookings, db, ledger
from core.bookings import apply as bookings_apply
from core.bookings import apply_records
from core.models import Booking, BookingStatus, Company, LedgerEntry

PAIRS = 150


def record(record_id: int, attendance: int, hour: int) -> dict[str, Any]:
    return {
        "id": record_id,
        "services": [{"id": 1, "title": "Стрижка", "cost": 1000}],
        "client": {"id": record_id, "name": "Анна", "phone": f"7999{record_id:07d}"},
        "datetime": "2026-11-20T12:00:00+03:00",
        "attendance": attendance,
        "deleted": False,
        "last_change_date": f"2026-11-20T{hour:02d}:00:00+03:00",
    }


async def _net_per_booking() -> dict[int, int]:
    rows = (
        await LedgerEntry.filter(booking_id__isnull=False)
        .annotate(total=Sum("amount"))
        .group_by("booking_id")
        .values_list("booking_id", "total")
    )
    return {int(booking_id): int(total or 0) for booking_id, total in rows}


async def test_came_and_a_newer_no_show_racing_end_without_a_bonus(orm: str) -> None:
    """Many pairs at once, each applier its own transaction (on PostgreSQL its own pooled
    connection): no pair may keep its accrual."""
    company = await Company.create(yclients_id=555, hook_token="hook", accrual_percent=10)
    await apply_records(company, [record(i, 0, 10) for i in range(1, PAIRS + 1)])

    def race(i: int) -> list[Awaitable[bookings.ApplyStats]]:
        return [
            apply_records(company, [record(i, 1, 11)]),
            apply_records(company, [record(i, -1, 12)]),
        ]

    await asyncio.gather(*(call for i in range(1, PAIRS + 1) for call in race(i)))
    statuses = set(await Booking.all().values_list("status", flat=True))
    assert statuses == {BookingStatus.NO_SHOW}
    kept = {b: net for b, net in (await _net_per_booking()).items() if net != 0}
    assert kept == {}
    assert await ledger.reconcile() == []


@pytest.mark.postgres
async def test_the_booking_stays_locked_while_its_bonus_is_settled(
    orm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window itself, without relying on luck: while the bonus is settled, another
    connection cannot lock the booking's row."""
    company = await Company.create(yclients_id=555, hook_token="hook", accrual_percent=10)
    await apply_records(company, [record(1, 0, 10)])
    (booking_id,) = await Booking.all().values_list("id", flat=True)
    seen: list[str] = []
    settle: Callable[..., Awaitable[None]] = bookings_apply._settle_bonuses

    async def probing(*args: Any) -> None:
        probe = await asyncpg.connect(orm)
        try:
            await probe.execute("SET lock_timeout = '1ms'")
            await probe.fetch("SELECT id FROM booking WHERE id = $1 FOR UPDATE NOWAIT", booking_id)
            seen.append("unlocked")
        except asyncpg.LockNotAvailableError:
            seen.append("locked")
        finally:
            await probe.close()
        await settle(*args)

    monkeypatch.setattr(bookings_apply, "_settle_bonuses", probing)
    stats = await apply_records(company, [record(1, 1, 11)])
    assert stats.awarded == 1
    assert seen == ["locked"]
    assert db.dialect() == "postgres"
