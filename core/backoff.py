"""Capped exponential backoff with jitter, on an injected clock.

The chat channels retry their outside systems (the Bot API, the WhatsApp gateway) through it
for as long as the process runs; tests hand in a clock whose `sleep` they move by hand.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Clock:
    """Where the retry loops read the time, sleep, and draw their jitter."""

    now: Callable[[], datetime] = utcnow
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # A number in [0, 1).
    random: Callable[[], float] = field(default=random.random)


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    first: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    # Each delay is spread by ± this fraction, so replicas that lost the same system at the
    # same moment do not come back to it in step.
    jitter: float = 0.2

    def delay(self, failures: int, draw: float) -> float:
        """The wait after the `failures`-th failure in a row (1, 2, …), `draw` in [0, 1)."""
        # Past ~60 doublings every sane policy is at its cap; the exponent must not overflow.
        raw = min(self.cap, self.first * self.factor ** min(max(failures - 1, 0), 64))
        spread = 1.0 - self.jitter + 2.0 * self.jitter * draw
        return min(self.cap, max(0.0, raw * spread))


class Backoff:
    """The failures in a row of one retry loop, and the wait each one earns."""

    def __init__(self, policy: BackoffPolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock
        self.failures = 0

    def next_delay(self) -> float:
        return self.policy.delay(self.failures + 1, self.clock.random())

    async def wait(self) -> float:
        """Count one more failure and sleep what it earns; returns the delay slept."""
        delay = self.next_delay()
        self.failures += 1
        await self.clock.sleep(delay)
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits `first` again."""
        self.failures = 0
