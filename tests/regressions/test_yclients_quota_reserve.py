"""Issue 10, medium 5: bulk syncs (80 parallel over the sync API) took the whole YClients
limit; another owner's registration redirect waited 57.6 s and the cron starved the same way.
The limiter now keeps a share for the cron and a reserve for interactive calls."""

from __future__ import annotations

import asyncio
import heapq
import itertools

import httpx

from core.bookings.sync import sync_all
from core.models import Company, IntegrationStatus
from core.yclients import Priority, RateLimiter, YClientsClient


class VirtualTime:
    """A clock and a sleep for the limiter: time moves only when the test runs it on."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + seconds, next(self._seq), future))
        await future

    async def run_until(self, moment: float) -> None:
        while True:
            await settle()
            if not self._timers or self._timers[0][0] > moment:
                self.now = max(self.now, moment)
                return
            when, _, future = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            future.set_result(None)


async def settle() -> None:
    """Lets every task that can run do so (no time passes)."""
    for _ in range(8):
        await asyncio.sleep(0)


def limiter(time: VirtualTime) -> RateLimiter:
    return RateLimiter(5.0, 200, clock=time.clock, sleep=time.sleep)


def calls_in(grants: list[float], start: float, seconds: float) -> int:
    end = start + seconds - 1e-9  # slots are sums of float intervals
    return sum(1 for moment in grants if start <= moment < end)


def most_in_any(grants: list[float], seconds: float) -> int:
    return max((calls_in(grants, start, seconds) for start in grants), default=0)


async def test_an_interactive_call_passes_a_flood_of_bulk_calls() -> None:
    time = VirtualTime()
    shared = limiter(time)
    bulk: list[float] = []

    async def bulk_call() -> None:
        await shared.acquire(Priority.BULK)
        bulk.append(time.now)

    flood = [asyncio.create_task(bulk_call()) for _ in range(400)]
    await time.run_until(30.0)
    waits: list[float] = []
    for _ in range(10):  # a registration redirect reading ten branches, one after another
        asked = time.now
        call = asyncio.create_task(shared.acquire(Priority.INTERACTIVE))
        await time.run_until(time.now + 1.0)
        assert call.done(), "the interactive call waited behind the bulk calls"
        waits.append(time.now - asked)
    await time.run_until(600.0)
    assert all(task.done() for task in flood)
    # Bulk calls kept to their half of the limit, a second and a minute at a time.
    assert most_in_any(bulk, 1.0) <= 3
    assert most_in_any(bulk, 60.0) <= 100


async def test_the_cron_keeps_its_share_beside_bulk_calls_and_leaves_a_reserve() -> None:
    time = VirtualTime()
    shared = limiter(time)
    grants: dict[Priority, list[float]] = {Priority.BULK: [], Priority.CRON: []}

    async def call(priority: Priority) -> None:
        await shared.acquire(priority)
        grants[priority].append(time.now)

    async def cron() -> None:
        for _ in range(300):  # the sync tick: one call after another
            await call(Priority.CRON)

    flood = [asyncio.create_task(call(Priority.BULK)) for _ in range(300)]
    sweep = asyncio.create_task(cron())
    await time.run_until(120.0)
    # In the second minute both run at full pressure: bulk at most half, the cron the rest of
    # its share, and together never more than 80 %: 40 calls a minute stay free.
    bulk = calls_in(grants[Priority.BULK], 60.0, 60.0)
    cron_calls = calls_in(grants[Priority.CRON], 60.0, 60.0)
    assert bulk <= 100
    assert cron_calls >= 60
    assert bulk + cron_calls <= 160
    asked = time.now
    interactive = asyncio.create_task(shared.acquire(Priority.INTERACTIVE))
    await time.run_until(time.now + 1.0)
    assert interactive.done() and time.now - asked <= 1.0
    await time.run_until(900.0)
    assert sweep.done() and all(task.done() for task in flood)


async def test_every_class_together_keeps_the_whole_limit() -> None:
    time = VirtualTime()
    shared = limiter(time)
    grants: list[float] = []

    async def call(priority: Priority) -> None:
        await shared.acquire(priority)
        grants.append(time.now)

    tasks = [
        asyncio.create_task(call(priority))
        for _ in range(150)
        for priority in (Priority.BULK, Priority.CRON, Priority.INTERACTIVE)
    ]
    await time.run_until(900.0)
    assert all(task.done() for task in tasks)
    assert most_in_any(grants, 60.0) <= 200
    assert most_in_any(grants, 1.0) <= 5


async def test_a_client_passes_its_class_to_the_shared_limiter() -> None:
    seen: list[Priority] = []

    class Recording(RateLimiter):
        async def acquire(self, priority: Priority = Priority.INTERACTIVE) -> None:
            seen.append(priority)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "data": {"id": 1}, "meta": []})

    client = YClientsClient(
        "http://yc", "p", limiter=Recording(5.0), transport=httpx.MockTransport(handler)
    )
    async with client:
        await client.company(1)
        await client.with_priority(Priority.BULK).company(1)
        await client.with_priority(Priority.CRON).with_user_token("u").company(1)
        assert client.with_user_token("u").with_priority(Priority.BULK).priority is Priority.BULK
    assert seen == [Priority.INTERACTIVE, Priority.BULK, Priority.CRON]


async def test_the_cron_sweep_counts_as_cron(orm: str) -> None:
    seen: list[Priority] = []

    class Recording(RateLimiter):
        async def acquire(self, priority: Priority = Priority.INTERACTIVE) -> None:
            seen.append(priority)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "data": [], "meta": []})

    await Company.create(yclients_id=1, hook_token="h", integration_status=IntegrationStatus.ACTIVE)
    client = YClientsClient(
        "http://yc", "p", "u", limiter=Recording(5.0), transport=httpx.MockTransport(handler)
    )
    async with client:
        report = await sync_all(client)
    assert report.synced and seen and set(seen) == {Priority.CRON}
