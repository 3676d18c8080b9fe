from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from core import db, ledger
from core.bookings.sync import PAGE_SIZE, sync_all, sync_company
from core.locks import lock_key, run_exclusive
from core.models import Booking, BookingStatus, Company, IntegrationStatus, SyncState
from core.yclients import YClientsClient
from tests.fakes.yclients import PARTNER_TOKEN, USER_TOKEN, YClientsEmulator


@pytest.fixture
async def emulator() -> AsyncIterator[YClientsEmulator]:
    async with YClientsEmulator() as emu:
        yield emu


@pytest.fixture
async def api(emulator: YClientsEmulator) -> AsyncIterator[YClientsClient]:
    async with YClientsClient(emulator.url, PARTNER_TOKEN, USER_TOKEN, rate_limit=None) as client:
        yield client


async def salon(emulator: YClientsEmulator, yclients_id: int = 555) -> Company:
    emulator.add_company(yclients_id)
    emulator.add_service(yclients_id, title="Стрижка", price_min=1500, price_max=2000)
    return await Company.create(
        yclients_id=yclients_id,
        hook_token=f"hook{yclients_id}",
        accrual_percent=10,
        integration_status=IntegrationStatus.ACTIVE,
    )


async def test_first_sync_reads_every_page_and_matches_clients(
    orm: str, emulator: YClientsEmulator, api: YClientsClient
) -> None:
    company = await salon(emulator)
    total = PAGE_SIZE * 2 + 17
    for i in range(total):
        phone = None if i == 0 else f"7999{i:07d}"
        emulator.add_record(
            555, client={"id": i, "name": f"C{i}", "phone": phone} if phone else None
        )
    stats = await sync_company(api, company)
    assert (stats.fetched, stats.created, stats.matched, stats.unmatched) == (
        total,
        total,
        total - 1,
        1,
    )
    assert emulator.calls_to("/api/v1/records/555") == 3  # ⌈total / page size⌉
    assert await Booking.filter(company_id=company.id).count() == total
    state = await SyncState.get(company_id=company.id)
    assert state.last_status == "ok" and state.changed_after is not None
    await company.refresh_from_db()
    assert company.catalogue and company.catalogue["services"][0]["title"] == "Стрижка"


async def test_incremental_sync_picks_up_only_changes_and_awards_and_reverses(
    orm: str, emulator: YClientsEmulator, api: YClientsClient
) -> None:
    company = await salon(emulator)
    emulator.now = datetime.now(UTC) - timedelta(hours=2)
    first = emulator.add_record(555)
    for _ in range(9):
        emulator.add_record(555)
    await sync_company(api, company)
    emulator.now = datetime.now(UTC) + timedelta(minutes=1)
    emulator.update_record(555, first["id"], attendance=1, visit_attendance=1)
    stats = await sync_company(api, company)
    assert (stats.fetched, stats.updated, stats.awarded) == (1, 1, 1)
    booking = await Booking.get(yclients_record_id=first["id"])
    assert booking.status is BookingStatus.COMPLETED and booking.client_id is not None
    assert await ledger.balance(booking.client_id) == 150
    emulator.now = datetime.now(UTC) + timedelta(minutes=2)
    emulator.delete_record(555, first["id"])
    stats = await sync_company(api, company)
    assert stats.reversed == 1
    assert await ledger.balance(booking.client_id) == 0


async def test_one_salon_failing_does_not_stop_the_others(
    orm: str, emulator: YClientsEmulator, api: YClientsClient
) -> None:
    good = await salon(emulator, 555)
    emulator.add_record(555)
    broken = await Company.create(
        yclients_id=404404, hook_token="h2", integration_status=IntegrationStatus.ACTIVE
    )
    report = await sync_all(api)
    assert set(report.synced) == {good.id} and set(report.failed) == {broken.id}
    state = await SyncState.get(company_id=broken.id)
    assert state.last_status == "failed" and state.changed_after is None


async def test_the_sync_job_runs_once_at_a_time(orm: str) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def job() -> str:
        started.set()
        await release.wait()
        return "done"

    first = asyncio.create_task(run_exclusive("test-job", job))
    await started.wait()
    assert await run_exclusive("test-job", job) == (False, None)
    release.set()
    assert await first == (True, "done")
    # Released by its holder, since the pool does not reset sessions (core.db.keep_session):
    # every pooled connection can take the lock again, one after another.
    for _ in range(3):
        assert await run_exclusive("test-job", job) == (True, "done")


async def test_a_lock_whose_release_fails_leaves_with_its_connection(
    orm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.dialect() != "postgres":
        pytest.skip("the advisory lock is PostgreSQL's; SQLite uses a process lock")
    real_execute = asyncpg.connection.Connection.execute

    async def failing_unlock(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if "pg_advisory_unlock" in query:
            raise ConnectionError("the release was lost")
        return await real_execute(self, query, *args, **kwargs)

    async def job() -> str:
        return "done"

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", failing_unlock)
    with pytest.raises(ConnectionError):
        await run_exclusive("test-job", job)
    monkeypatch.undo()
    # The session that held the lock is gone, and the lock with it: another session gets it.
    other = await asyncpg.connect(orm)
    try:
        key = lock_key("test-job")
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", key) is True
        await other.execute("SELECT pg_advisory_unlock($1)", key)
    finally:
        await other.close()
    assert await run_exclusive("test-job", job) == (True, "done")


async def test_the_first_sync_is_a_backfill_the_next_ones_tell_clients(
    orm: str, emulator: YClientsEmulator, api: YClientsClient
) -> None:
    """The first sync plans reminders for the salon's upcoming records but no notices about
    them; a record created after it is told; the salon's address is kept for the notices."""
    from core.models import ScheduledMessage
    from core.visits import kinds

    company = await salon(emulator)
    emulator.add_record(555, client={"id": 1, "name": "Анна", "phone": "79990000001"})
    await sync_company(api, company)
    planned = {m.kind for m in await ScheduledMessage.all()}
    assert kinds.DAY_BEFORE in planned and not planned & set(kinds.NOTICES)
    assert (company.catalogue or {}).get("address") == "Москва, ул. Тверская, 1"
    emulator.add_record(555, client={"id": 2, "name": "Вера", "phone": "79990000002"})
    await sync_company(api, company)
    notices = await ScheduledMessage.filter(kind__in=kinds.NOTICES)
    assert [n.kind for n in notices] == [kinds.NOTICE_CREATED]
