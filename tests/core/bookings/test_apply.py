from __future__ import annotations

from typing import Any

import pytest
from tortoise import connections

from core import codes, ledger
from core.bookings import (
    ApplyStats,
    apply_record_by_id,
    apply_records,
    booking_status,
    matching,
    visit_value,
)
from core.bookings import apply as bookings_apply
from core.clients import create_client
from core.models import Booking, BookingStatus, Client, Company, LedgerEntry, MarketplaceEvent


def record(record_id: int = 1, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": record_id,
        "company_id": 555,
        "staff": {"id": 7, "name": "Ольга"},
        "services": [
            {"id": 1, "title": "Стрижка", "cost": 1500, "first_cost": 1500, "discount": 0},
            {"id": 2, "title": "Укладка", "cost": 500.0, "first_cost": 1000, "discount": 50},
        ],
        "client": {"id": 900, "name": "Анна", "phone": "79991234567", "email": "A@x.ru"},
        "datetime": "2026-11-20T12:00:00+03:00",
        "comment": "",
        "attendance": 0,
        "visit_attendance": 0,
        "deleted": False,
        "last_change_date": "2026-11-20T10:00:00+0300",
    }
    base.update(changes)
    return base


async def salon() -> Company:
    return await Company.create(yclients_id=555, hook_token="hook", accrual_percent=10)


async def test_new_records_create_bookings_and_clients_matched_by_phone(orm: str) -> None:
    company = await salon()
    stats = await apply_records(company, [record(1), record(2, client=None)])
    assert (stats.created, stats.matched, stats.unmatched) == (2, 1, 1)
    assert stats.unmatched_records == [2]
    booking = await Booking.get(yclients_record_id=1)
    client = await Client.get(id=booking.client_id)
    assert client.phone == "+79991234567" and client.name == "Анна"
    assert client.email == "a@x.ru" and client.yclients_client_id == 900
    assert booking.cost == 2000 and booking.staff_name == "Ольга"
    assert booking.status is BookingStatus.PENDING and client.balance == 0


async def test_phone_in_any_shape_joins_the_known_client(orm: str) -> None:
    company = await salon()
    known = (await create_client(company, phone="+79991234567")).client
    shapes = ["79991234567", "+7 999 123-45-67", "8 (999) 123-45-67", 79991234567]
    for i, phone in enumerate(shapes, 1):
        await apply_records(company, [record(i, client={"id": 1, "phone": phone})])
    assert await Client.filter(company_id=company.id).count() == 1
    assert await Booking.filter(client_id=known.id).count() == len(shapes)


async def test_code_in_comment_wins_then_email(orm: str) -> None:
    company = await salon()
    by_code = (await create_client(company, phone="+79990000001")).client
    by_email = (await create_client(company, phone="+79990000002", email="e@x.ru")).client
    await apply_records(
        company,
        [
            record(1, comment=f"код {codes.display(by_code.code).lower()}"),
            record(2, client={"id": 5, "email": "E@X.RU"}),
        ],
    )
    assert (await Booking.get(yclients_record_id=1)).client_id == by_code.id
    assert (await Booking.get(yclients_record_id=2)).client_id == by_email.id


async def test_completed_visit_earns_once_and_a_delete_without_client_reverses(orm: str) -> None:
    company = await salon()
    came = record(1, attendance=1, last_change_date="2026-11-20T13:00:00+0300")
    for _ in range(4):  # YClients has been seen delivering one change four times
        await apply_records(company, [came])
    booking = await Booking.get(yclients_record_id=1)
    assert booking.status is BookingStatus.COMPLETED
    assert booking.client_id is not None
    assert await ledger.balance(booking.client_id) == 200
    stats = await apply_record_by_id(
        company,
        record(1, client=None, attendance=1, last_change_date="2026-11-20T14:00:00+03:00"),
        deleted=True,
    )
    assert stats.reversed == 1 and stats.changes[0].amount == -200
    booking = await Booking.get(yclients_record_id=1)
    assert booking.status is BookingStatus.CANCELLED and booking.client_id is not None
    assert await ledger.balance(booking.client_id) == 0


async def test_attendance_1_minus1_1_ends_with_one_accrual_net(orm: str) -> None:
    company = await salon()
    for hour, attendance in ((11, 1), (12, -1), (13, 1), (14, 1)):
        await apply_records(
            company,
            [record(1, attendance=attendance, last_change_date=f"2026-11-20T{hour}:00:00+03:00")],
        )
    booking = await Booking.get(yclients_record_id=1)
    assert booking.client_id is not None
    amounts = (
        await LedgerEntry.filter(booking_id=booking.id)
        .order_by("id")
        .values_list("amount", flat=True)
    )
    assert list(amounts) == [200, -200, 200]
    assert await ledger.balance(booking.client_id) == 200


async def test_older_change_never_overwrites_newer_whatever_the_offset_spelling(orm: str) -> None:
    company = await salon()
    await apply_records(
        company, [record(1, attendance=1, last_change_date="2026-11-20T12:00:00+03:00")]
    )
    # 11:30+0300 is older; 09:30+00:00 is 12:30 Moscow time, newer.
    stale = await apply_records(
        company, [record(1, attendance=-1, last_change_date="2026-11-20T11:30:00+0300")]
    )
    assert stale.stale == 1
    assert (await Booking.get(yclients_record_id=1)).status is BookingStatus.COMPLETED
    newer = await apply_records(
        company, [record(1, attendance=-1, last_change_date="2026-11-20T09:30:00+00:00")]
    )
    assert newer.updated == 1 and newer.reversed == 1
    assert (await Booking.get(yclients_record_id=1)).status is BookingStatus.NO_SHOW


async def test_out_of_order_inside_one_batch_keeps_the_newest(orm: str) -> None:
    company = await salon()
    newest = record(1, attendance=1, last_change_date="2026-11-20T12:00:00+0300")
    older = record(1, attendance=0, last_change_date="2026-11-20T11:00:00+03:00")
    stats = await apply_records(company, [newest, older])
    assert stats.created == 1 and stats.awarded == 1


async def test_a_visit_worth_nothing_earns_nothing(orm: str) -> None:
    company = await salon()
    stats = await apply_records(company, [record(1, attendance=1, services=[{"cost": 0}])])
    assert stats.awarded == 0 and not await LedgerEntry.exists()


async def test_reversal_that_falls_short_is_flagged(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record(1, attendance=1)])
    booking = await Booking.get(yclients_record_id=1)
    assert booking.client_id is not None
    await ledger.redeem(booking.client_id, 150, "spent")
    stats = await apply_records(
        company, [record(1, attendance=-1, last_change_date="2026-11-20T15:00:00+0300")]
    )
    assert stats.changes[0].shortfall == 150
    event = await MarketplaceEvent.get(kind="reversal_shortfall")
    assert event.details["shortfall"] == 150
    assert await ledger.reconcile() == []


def test_status_and_value_mapping() -> None:
    assert booking_status({"attendance": 1}) is BookingStatus.COMPLETED
    assert booking_status({"attendance": -1}) is BookingStatus.NO_SHOW
    assert booking_status({"attendance": 2}) is BookingStatus.CONFIRMED
    assert booking_status({"attendance": None, "visit_attendance": 1}) is BookingStatus.COMPLETED
    assert booking_status({"attendance": 1, "deleted": True}) is BookingStatus.CANCELLED
    assert visit_value({"services": [{"cost": "100.4"}, {"cost": None}, {"cost": 50}]}) == 150


# --- whole pages at once ---


async def test_a_page_creates_its_new_clients_together_and_settles_in_record_order(
    orm: str,
) -> None:
    company = await salon()
    known = (await create_client(company, phone="+79990000009", email="e@x.ru")).client
    anna = {"id": 900, "name": "Анна", "phone": "79991234567"}
    page = [
        record(1, attendance=1, client=anna),
        record(2, attendance=1, client={"id": 901, "name": "Ира", "phone": "79990000003"}),
        # Anna again: her phone, new with record 1, wins over the e-mail of another client.
        record(3, attendance=1, client={**anna, "email": "E@x.ru"}, services=[{"cost": 500}]),
        record(4, attendance=1, client={"id": 902, "email": "e@X.ru"}),
    ]
    stats = await apply_records(company, page)
    assert (stats.created, stats.matched, stats.awarded) == (4, 4, 4)
    clients = {c.phone: c for c in await Client.filter(company_id=company.id)}
    assert set(clients) == {"+79990000009", "+79991234567", "+79990000003"}
    new = clients["+79991234567"]
    assert (new.name, new.yclients_client_id, new.email) == ("Анна", 900, None)
    assert codes.parse(new.code) == new.code and new.balance == 250
    ira = clients["+79990000003"].id
    owners = {
        b.yclients_record_id: b.client_id for b in await Booking.filter(company_id=company.id)
    }
    assert owners == {1: new.id, 2: ira, 3: new.id, 4: known.id}
    # One entry per visit, in record order, each with the balance one by one would leave.
    entries = await LedgerEntry.all().order_by("id")
    assert [(e.client_id, e.amount, e.balance_after) for e in entries] == [
        (new.id, 200, 200),
        (ira, 200, 200),
        (new.id, 50, 250),
        (known.id, 200, 200),
    ]
    assert [(c.entry_id, c.client_id, c.amount, c.balance) for c in stats.changes] == [
        (e.id, e.client_id, e.amount, e.balance_after) for e in entries
    ]
    assert await ledger.reconcile() == []
    # The page again changes nothing.
    again = await apply_records(company, page)
    assert (again.updated, again.awarded, again.reversed) == (4, 0, 0)
    assert await LedgerEntry.all().count() == 4


async def test_accruals_whose_key_was_taken_meanwhile_replay_one_by_one(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record(1), record(2, client={"id": 2, "phone": "79990000002"})])
    one, two = await Booking.all().order_by("yclients_record_id")
    assert one.client_id is not None and two.client_id is not None
    # A webhook for record 1 won the race and accrued with the key this page would use.
    raced = await ledger.accrue(one.client_id, 200, f"booking:{one.id}:0:accrual")
    stats = ApplyStats()
    await bookings_apply._accrue_all(
        [
            ledger.Accrual(one.client_id, 200, f"booking:{one.id}:0:accrual", one.id, "r1"),
            ledger.Accrual(two.client_id, 200, f"booking:{two.id}:0:accrual", two.id, "r2"),
        ],
        stats,
    )
    assert stats.awarded == 1 and [c.client_id for c in stats.changes] == [two.client_id]
    assert await ledger.balance(one.client_id) == raced.balance == 200
    assert await ledger.balance(two.client_id) == 200
    assert await LedgerEntry.all().count() == 2


# The migrations leave SQLite's client table without its unique (company, phone).
@pytest.mark.postgres
async def test_a_phone_taken_meanwhile_falls_back_to_one_by_one(orm: str) -> None:
    company = await salon()
    taken = (await create_client(company, phone="+79990000001")).client
    created = await matching._clients_for_phones(
        company,
        {
            "+79990000001": record(1, client={"id": 1, "phone": "79990000001"}),
            "+79990000002": record(2, client={"id": 2, "phone": "79990000002", "name": "Ира"}),
        },
    )
    assert created["+79990000001"] == taken.id
    fresh = await Client.get(id=created["+79990000002"])
    assert (fresh.phone, fresh.name, fresh.yclients_client_id) == ("+79990000002", "Ира", 2)
    assert await Client.filter(company_id=company.id).count() == 2


@pytest.mark.postgres
async def test_statistics_are_refreshed_once_a_load_outgrows_them(
    orm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bookings_apply, "_growth", bookings_apply._Growth())
    monkeypatch.setattr(bookings_apply, "_ANALYZE_AFTER", 50)
    company = await salon()
    analyzed = "SELECT reltuples FROM pg_class WHERE oid = 'booking'::regclass"
    conn = connections.get("default")
    await apply_records(company, [record(i) for i in range(1, 41)])
    assert bookings_apply._growth.created == 40
    await apply_records(company, [record(i) for i in range(41, 81)])
    assert bookings_apply._growth.created == 0
    assert (await conn.execute_query_dict(analyzed))[0]["reltuples"] == 80
    # Grown by less than the statistics know of: nothing to do yet.
    await apply_records(company, [record(i) for i in range(81, 141)])
    assert bookings_apply._growth.created == 60
