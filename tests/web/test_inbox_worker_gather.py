"""The inbox worker lets a burst of YClients webhooks gather (InboxPolicy.gather_*): it waits
for a pause before its next batch, and while no pause comes it still takes a small batch every
`gather_max` seconds.

The worker's clock is a fake that moves only when the worker sleeps, and the burst is a schedule
of webhook times on it: the waits are exact and do not depend on how loaded the machine is."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

from aiohttp import web

from core.inbox import InboxPolicy
from web.inbox_worker import InboxWorker
from web.keys import INBOX_WAKEUP, InboxWakeup

# Binary fractions, so the fake time adds up exactly.
POLICY = InboxPolicy(gather_quiet=0.125, gather_max=0.5, batch_size=50, burst_batch_size=5)
INTERVAL = 1 / 64


class Burst:
    """Time that moves by the worker's sleeps; a bulk webhook arrives at each time of
    `arrivals` that the time passes."""

    def __init__(self, wakeup: InboxWakeup, arrivals: Iterator[float]) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.wakeup = wakeup
        self._arrivals = arrivals
        self._next: float | None = next(arrivals, None)
        wakeup.clock = self.clock
        self._deliver()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        target = self.now + delay
        while self._next is not None and self._next <= target:
            self.now = self._next
            self._deliver()
        self.now = target
        await asyncio.sleep(0)

    def _deliver(self) -> None:
        while self._next is not None and self._next <= self.now:
            self.wakeup.set(bulk=True)
            self._next = next(self._arrivals, None)


def worker(arrivals: Iterator[float]) -> tuple[InboxWorker, Burst]:
    app = web.Application()
    app[INBOX_WAKEUP] = InboxWakeup()
    burst = Burst(app[INBOX_WAKEUP], arrivals)
    return InboxWorker(app, POLICY, {}, clock=burst.clock, sleep=burst.sleep), burst


def every(interval: float, until: float | None = None) -> Iterator[float]:
    """Webhook times 0, interval, 2·interval, … (below `until`)."""
    for n in itertools.count():
        at = n * interval
        if until is not None and at >= until:
            return
        yield at


async def test_no_burst_no_wait_and_other_sources_do_not_count() -> None:
    w, burst = worker(iter(()))
    w.wakeup.set()  # a WhatsApp message, say: not bulk
    assert await w._gather() is POLICY
    assert burst.slept == []


async def test_a_burst_that_pauses_is_taken_whole_after_the_pause() -> None:
    w, burst = worker(every(INTERVAL, until=0.25))  # the last webhook at 0.25 - INTERVAL
    policy = await w._gather()
    assert policy.batch_size == POLICY.batch_size
    # The whole batch, once the pause after the last webhook reached gather_quiet: the pause
    # ended the wait, not gather_max.
    assert burst.now == 0.25 - INTERVAL + POLICY.gather_quiet < POLICY.gather_max


async def test_a_burst_without_a_pause_still_gets_a_small_batch_every_gather_max() -> None:
    w, burst = worker(every(INTERVAL))
    policy = await w._gather()
    assert policy.batch_size == POLICY.burst_batch_size
    assert burst.now == POLICY.gather_max
