"""A clock whose time moves only when the test moves it, for the retry loops (core.backoff)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from core.backoff import Clock

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    """`clock()` is the Clock to hand to the app; `advance()` wakes the sleepers whose time
    has come; `next_sleep()` waits (on an event, bounded in real time) until a loop sleeps."""

    def __init__(self, start: datetime = START, draw: float = 0.5) -> None:
        self.moment = start
        # What `Clock.random` returns: 0.5 puts every delay on its unjittered value.
        self.draw = draw
        self.slept: list[float] = []
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()

    def clock(self) -> Clock:
        return Clock(now=self.now, sleep=self.sleep, random=lambda: self.draw)

    def now(self) -> datetime:
        return self.moment

    @property
    def elapsed(self) -> float:
        return (self.moment - START).total_seconds()

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.moment + timedelta(seconds=delay), woken)
        self._sleepers.append(entry)
        self._changed.set()
        try:
            await woken
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    def pending(self) -> list[float]:
        """Seconds until each sleeper wakes."""
        return [(due - self.moment).total_seconds() for due, _ in self._sleepers]

    async def next_sleep(self, within: float = 10.0) -> float:
        """Wait until some loop sleeps; the seconds until the earliest sleeper wakes."""
        async with asyncio.timeout(within):
            while not self._sleepers:
                self._changed.clear()
                await self._changed.wait()
        return min(self.pending())

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)
        for due, woken in list(self._sleepers):
            if due <= self.moment:
                self._sleepers.remove((due, woken))
                if not woken.done():
                    woken.set_result(None)
