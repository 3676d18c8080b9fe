from __future__ import annotations

import asyncio

from core.backoff import Backoff, BackoffPolicy
from tests.fakes.clock import FakeClock


def test_delays_double_up_to_the_cap() -> None:
    policy = BackoffPolicy(first=1.0, factor=2.0, cap=30.0, jitter=0.2)
    assert [policy.delay(n, 0.5) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    # Thousands of failures in a row (days of an outage) stay at the cap, no overflow.
    assert policy.delay(100_000, 0.5) == 30.0


def test_jitter_spreads_each_delay_but_never_past_the_cap() -> None:
    policy = BackoffPolicy(first=1.0, factor=2.0, cap=30.0, jitter=0.2)
    assert policy.delay(3, 0.0) == 4 * 0.8
    assert abs(policy.delay(3, 0.999) - 4 * 1.2) < 0.01
    assert policy.delay(20, 0.0) == 30 * 0.8
    assert policy.delay(20, 0.999) == 30.0


async def test_the_loop_sleeps_on_the_injected_clock_and_starts_over_after_a_success() -> None:
    fake = FakeClock(draw=0.0)
    backoff = Backoff(BackoffPolicy(first=1.0, factor=2.0, cap=5.0, jitter=0.5), fake.clock())
    for _ in range(4):
        waiting = asyncio.ensure_future(backoff.wait())
        fake.advance(await fake.next_sleep())
        await waiting
    assert fake.slept == [0.5, 1.0, 2.0, 2.5]
    assert fake.elapsed == 6.0
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay() == 0.5
