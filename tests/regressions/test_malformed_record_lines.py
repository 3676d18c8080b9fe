"""A record event of valid top-level shape whose `data.services` held a line that is not an
object (`["x"]`), or whose `comment` or client's `email` was not text, was stored and then
failed eight times over half an hour before going dead. The odd part is now skipped (a
service line with a log line) or taken as absent (a `staff` that is not an object has no
name), and the event is processed once."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from core import bookings, inbox, ledger
from core.bookings import apply_records
from core.inbox import InboxPolicy
from core.models import Booking, BookingStatus, Company, IntegrationStatus

POLICY = InboxPolicy(lease=timedelta(seconds=60), max_attempts=3, batch_size=10)


def data(record_id: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": record_id,
        "services": [{"id": 1, "title": "Стрижка", "cost": 2000}],
        "staff": {"id": 7, "name": "Ольга"},
        "client": {"id": 900, "name": "Анна", "phone": "79991234567"},
        "datetime": "2026-11-20T12:00:00+03:00",
        "attendance": 1,
        "last_change_date": "2026-11-20T10:00:00+0300",
    }
    base.update(changes)
    return base


ODD = [
    data(1, services=["x", {"id": 2, "title": "Укладка", "cost": 500}, 5, None]),
    data(2, staff="x"),
    data(3, services="x", staff=["x"]),
    data(4, comment=12345, client={"id": "x", "phone": "79991234567", "email": 7}),
    data(5, client="x"),
]


async def salon() -> Company:
    return await Company.create(
        yclients_id=555,
        hook_token="hook",
        accrual_percent=10,
        integration_status=IntegrationStatus.ACTIVE,
    )


async def store(company: Company, record: dict[str, Any]) -> None:
    payload = {
        "company_id": 555,
        "resource": "record",
        "resource_id": record["id"],
        "status": "update",
        "data": record,
    }
    stored = await inbox.store(
        bookings.YCLIENTS, bookings.dedupe_key_for_yclients(payload), payload, company.id
    )
    assert stored.created


async def check_bookings() -> None:
    found = {b.yclients_record_id: b for b in await Booking.all()}
    assert set(found) == {1, 2, 3, 4, 5}
    assert all(b.status is BookingStatus.COMPLETED for b in found.values())
    assert found[1].cost == 500 and [s["title"] for s in found[1].services] == ["Укладка"]
    assert (found[2].staff_name, found[2].cost) == ("", 2000)
    assert (found[3].services, found[3].cost, found[3].staff_name) == ([], 0, "")
    assert found[4].client_id is not None and found[4].client_id == found[1].client_id
    assert found[5].client_id is None


@pytest.mark.parametrize("together", [True, False], ids=["batch", "one-by-one"])
async def test_odd_lines_are_skipped_and_the_event_is_done_at_once(
    orm: str, together: bool, caplog: pytest.LogCaptureFixture
) -> None:
    company = await salon()
    for record in ODD:
        await store(company, record)
    events = await inbox.claim(POLICY)
    assert len(events) == len(ODD)
    caplog.set_level(logging.WARNING, logger="core.bookings")
    handlers = inbox.Handlers()
    bookings.register(handlers)
    if together:
        outcomes = [o async for o in inbox.process_all(events, handlers, POLICY)]
    else:
        outcomes = [await inbox.process(e, handlers, POLICY) for e in events]
    assert [(o.status, o.error) for o in outcomes] == [(inbox.InboxStatus.DONE, None)] * len(ODD)
    assert await inbox.counts() == {"pending": 0, "done": len(ODD), "dead": 0}
    await check_bookings()
    skipped = [r.getMessage() for r in caplog.records if "service" in r.getMessage()]
    assert any("record 1" in m for m in skipped) and any("record 3" in m for m in skipped)
    assert await ledger.reconcile() == []


async def test_a_bare_odd_update_keeps_what_is_stored(orm: str) -> None:
    company = await salon()
    await apply_records(company, [data(1)])
    await apply_records(
        company, [{"id": 1, "services": "x", "staff": "x", "last_change_date": "2026-11-20T11:00"}]
    )
    booking = await Booking.get(yclients_record_id=1)
    # `services` that is not a list is absent: the stored lines and cost stay.
    assert booking.cost == 2000 and booking.status is BookingStatus.COMPLETED
