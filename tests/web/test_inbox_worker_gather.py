"""The inbox worker lets a burst of YClients webhooks gather (InboxPolicy.gather_*): it waits
for a pause before its next batch, and while no pause comes it still takes a small batch every
`gather_max` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from core.inbox import InboxPolicy
from web.inbox_worker import InboxWorker
from web.keys import INBOX_WAKEUP, InboxWakeup

POLICY = InboxPolicy(gather_quiet=0.1, gather_max=0.5, batch_size=50, burst_batch_size=5)


def worker() -> InboxWorker:
    app = web.Application()
    app[INBOX_WAKEUP] = InboxWakeup()
    return InboxWorker(app, POLICY, {})


async def webhooks_every(wakeup: InboxWakeup, interval: float, until: float) -> None:
    while time.monotonic() < until:
        wakeup.set(bulk=True)
        await asyncio.sleep(interval)


async def test_no_burst_no_wait_and_other_sources_do_not_count() -> None:
    w = worker()
    w.wakeup.set()  # a WhatsApp message, say: not bulk
    started = time.monotonic()
    assert await w._gather() is POLICY
    assert time.monotonic() - started < 0.05


async def test_a_burst_that_pauses_is_taken_whole_after_the_pause() -> None:
    w = worker()
    started = time.monotonic()
    burst = asyncio.create_task(webhooks_every(w.wakeup, 0.02, started + 0.25))
    await asyncio.sleep(0)
    policy = await w._gather()
    waited = time.monotonic() - started
    await burst
    assert policy.batch_size == POLICY.batch_size
    # The whole batch, so the pause ended the wait, not gather_max.
    assert waited >= 0.25 + POLICY.gather_quiet - 0.03


async def test_a_burst_without_a_pause_still_gets_a_small_batch_every_gather_max() -> None:
    w = worker()
    started = time.monotonic()
    burst = asyncio.create_task(webhooks_every(w.wakeup, 0.02, started + 5))
    try:
        await asyncio.sleep(0)
        policy = await w._gather()
        waited = time.monotonic() - started
    finally:
        burst.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await burst
    assert policy.batch_size == POLICY.burst_batch_size
    assert POLICY.gather_max - 0.03 <= waited < POLICY.gather_max + 1.0
