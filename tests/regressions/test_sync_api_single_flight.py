"""Issue 10, medium 5 and low 4: `POST /api/v1/yclients/sync-bookings` started a full sync per
request (80 in parallel for one salon exhausted the shared YClients quota) and held the request
for the whole sync (62.8 s with a slow YClients). Now: one job per salon, across replicas too,
answered 202 at once; `GET` on the same path tells how it goes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from core import companies
from core.bookings import sync
from core.models import Booking, Company, IntegrationStatus, LedgerKind, SyncState
from core.notifications import BalanceNotice
from core.settings import Settings
from core.yclients import YClientsClient
from tests.fakes.yclients import PARTNER_TOKEN, USER_TOKEN, YClientsEmulator
from web.app import create_app
from web.keys import NOTICE_FALLBACK, SYNC_JOBS
from web.sync_jobs import INTERRUPTED

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
URL = "/api/v1/yclients/sync-bookings"
RECORDS = "/api/v1/records/555"


class RecordingNotifier:
    def __init__(self) -> None:
        self.notices: list[BalanceNotice] = []

    async def notify(self, notices: Sequence[BalanceNotice]) -> None:
        self.notices.extend(notices)


@pytest.fixture
async def emulator() -> AsyncIterator[YClientsEmulator]:
    async with YClientsEmulator() as emu:
        emu.add_company(555)
        emu.add_record(555, attendance=1)
        yield emu


async def start(
    aiohttp_client: ClientFactory,
    settings: Settings,
    emulator: YClientsEmulator,
    notifier: RecordingNotifier | None = None,
) -> tuple[TestClient[Any, Any], Company, dict[str, str]]:
    app = create_app(
        settings.model_copy(
            update={
                "yclients_api_url": emulator.url,
                "yclients_partner_token": SecretStr(PARTNER_TOKEN),
                "yclients_user_token": SecretStr(USER_TOKEN),
                "yclients_rate_limit": 1000.0,
            }
        )
    )
    if notifier is not None:
        app[NOTICE_FALLBACK] = notifier
    client = await aiohttp_client(app)
    key, digest = companies.new_api_key()
    company = await Company.create(
        yclients_id=555,
        hook_token="h",
        api_key_hash=digest,
        integration_status=IntegrationStatus.ACTIVE,
        accrual_percent=10,
    )
    return client, company, {"Authorization": f"Bearer {key}"}


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Until `condition` holds (the database works in a thread, so the loop must really wait;
    the bound only ends a test that would otherwise hang)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


async def test_parallel_requests_make_one_sync_answered_at_once(
    aiohttp_client: ClientFactory, settings: Settings, emulator: YClientsEmulator
) -> None:
    notifier = RecordingNotifier()
    client, company, auth = await start(aiohttp_client, settings, emulator, notifier)
    emulator.gate = asyncio.Event()  # YClients does not answer until the test says so

    # Answered while YClients has not answered anything: the request does not hold the sync.
    answers = await asyncio.gather(*(client.post(URL, headers=auth) for _ in range(20)))
    bodies = [await answer.json() for answer in answers]
    assert {answer.status for answer in answers} == {202}
    assert {body["status"] for body in bodies} == {"running"}
    assert sorted(body["joined"] for body in bodies) == [False] + [True] * 19
    assert len({body["started_at"] for body in bodies}) == 1
    await until(lambda: emulator.calls[RECORDS] == 1)

    response = await client.get(URL, headers=auth)
    assert response.status == 200
    running = await response.json()
    assert running["status"] == "running" and running["progress"]["pages"] == 0

    emulator.gate.set()
    job = client.server.app[SYNC_JOBS].get(company.id)
    assert job is not None and job.task is not None
    await job.task
    # One sync: one read of the records, however many requests asked.
    assert emulator.calls[RECORDS] == 1
    done = await (await client.get(URL, headers=auth)).json()
    assert done["status"] == "done" and done["fetched"] == 1 and done["awarded"] == 1
    assert await Booking.filter(company_id=company.id).count() == 1
    # The balance notice went out after the sync, as before.
    assert [(notice.kind, notice.amount) for notice in notifier.notices] == [
        (LedgerKind.ACCRUAL, 150)  # 10 % of the visit's 1,500
    ]

    # A request after the job ended starts a new one.
    again = await (await client.post(URL, headers=auth)).json()
    assert again["joined"] is False


async def test_a_sync_running_on_another_replica_is_reported_not_repeated(
    aiohttp_client: ClientFactory, settings: Settings, emulator: YClientsEmulator
) -> None:
    client, company, auth = await start(aiohttp_client, settings, emulator)
    emulator.gate = asyncio.Event()
    # "Another replica": the same guarded sync from outside this app's job registry (on
    # PostgreSQL it holds the salon's advisory lock on its own connection).
    async with YClientsClient(emulator.url, PARTNER_TOKEN, USER_TOKEN) as other:
        elsewhere = asyncio.create_task(sync.sync_company_once(other, company))
        await until(lambda: emulator.calls[RECORDS] == 1)

        response = await client.post(URL, headers=auth)
        assert response.status == 202
        body = await response.json()
        assert body["status"] == "running" and body["joined"] is True and body["started_at"]
        status = await (await client.get(URL, headers=auth)).json()
        assert status["status"] == "running"

        emulator.gate.set()
        ran, _stats = await elsewhere
    assert ran is True
    assert emulator.calls[RECORDS] == 1  # this replica synced nothing itself
    status = await (await client.get(URL, headers=auth)).json()
    assert status["status"] == "done" and status["fetched"] == 1


async def test_a_failed_sync_is_reported_with_a_sentence(
    aiohttp_client: ClientFactory, settings: Settings, emulator: YClientsEmulator
) -> None:
    client, company, auth = await start(aiohttp_client, settings, emulator)
    emulator.fail_next(1, 403, path_prefix="/api/v1/records")  # not retried: no sleeping
    await client.post(URL, headers=auth)
    job = client.server.app[SYNC_JOBS].get(company.id)
    assert job is not None and job.task is not None
    await job.task
    body = await (await client.get(URL, headers=auth)).json()
    assert body["status"] == "failed" and "YClients" in body["error"]


async def test_a_sync_cut_short_by_a_restart_is_reported_failed(
    aiohttp_client: ClientFactory, settings: Settings, emulator: YClientsEmulator
) -> None:
    client, company, auth = await start(aiohttp_client, settings, emulator)
    # What a crashed process leaves: the state says running, nobody holds the salon's lock.
    await SyncState.create(company=company, last_status="running", last_run_at=datetime.now(UTC))
    body = await (await client.get(URL, headers=auth)).json()
    assert body["status"] == "failed" and body["error"] == INTERRUPTED


async def test_shutdown_cancels_a_running_sync(
    aiohttp_client: ClientFactory, settings: Settings, emulator: YClientsEmulator
) -> None:
    client, company, auth = await start(aiohttp_client, settings, emulator)
    emulator.gate = asyncio.Event()
    assert (await client.post(URL, headers=auth)).status == 202
    job = client.server.app[SYNC_JOBS].get(company.id)
    assert job is not None and job.task is not None
    await client.close()
    assert job.task.cancelled() and job.status == "failed"
    emulator.gate.set()
