"""Two replicas applying overlapping sets of records once deadlocked (booking rows locked in
whatever order each found them) or collided on inserting the same new record (an
IntegrityError, and the inbox retried the whole batch 15 s later). Rows are now created or
locked in record-id order by one INSERT … ON CONFLICT, and the clients whose balances move are
locked in id order."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from core import ledger
from core.bookings import apply_records
from core.models import Booking, BookingStatus, Client, Company, LedgerEntry

ROUNDS = 12
SIZE = 24


def record(record_id: int, attendance: int, hour: int, phone: int) -> dict[str, Any]:
    return {
        "id": record_id,
        "services": [{"id": 1, "title": "Стрижка", "cost": 1000}],
        "client": {"id": phone, "name": "Анна", "phone": f"7999{phone:07d}"},
        "datetime": "2026-11-20T12:00:00+03:00",
        "attendance": attendance,
        "deleted": False,
        "last_change_date": f"2026-11-20T{hour:02d}:00:00+03:00",
    }


@pytest.mark.postgres
async def test_overlapping_batches_in_opposite_orders_neither_deadlock_nor_collide(
    orm: str,
) -> None:
    company = await Company.create(yclients_id=555, hook_token="hook", accrual_percent=10)
    shuffle = random.Random(10)
    for n in range(ROUNDS):
        base = n * SIZE * 2
        ids = list(range(base + 1, base + 2 * SIZE + 1))
        # Half of the records exist already; four clients share all of them, so the batches
        # move the same balances.
        await apply_records(company, [record(i, 0, 9, i % 4) for i in ids[::2]])
        first = [record(i, 1, 10, i % 4) for i in ids[: SIZE + SIZE // 2]]
        second = [record(i, -1 if i % 3 else 1, 11, i % 4) for i in ids[SIZE // 2 :]]
        shuffle.shuffle(first)
        second.reverse()
        await asyncio.gather(
            apply_records(company, first),
            apply_records(company, second),
            apply_records(company, list(reversed(first))),
        )
    assert await Booking.filter(company_id=company.id).count() == ROUNDS * SIZE * 2
    assert await Client.filter(company_id=company.id).count() == 4
    # Each booking ends with the bonus its final state deserves.
    for booking in await Booking.filter(company_id=company.id):
        held = sum(await LedgerEntry.filter(booking_id=booking.id).values_list("amount", flat=True))
        assert held == (100 if booking.status is BookingStatus.COMPLETED else 0), booking.id
    assert await ledger.reconcile() == []
