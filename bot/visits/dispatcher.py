"""The visit loop's dispatcher: claims due scheduled messages and sends them, at most once.

Each round claims a batch (core.visits.due_messages: SENDING, committed), then for each row
checks it is still wanted (core.visits.wanted), asks its kind's handler for the message
(bot/visits/registry.py) and sends it through `Outbound` — to the client on the channel they
used last with the fallback, or to the salon's admins. Then the row is marked:

* SENT; DROPPED when no longer wanted (or the handler has nothing to say);
* back to PENDING later on Delivery.RETRY (flood control, a network error: backoff, and the
  messenger's own pace through bot/visits/pacing.py), FAILED after `max_attempts`;
* FAILED when no channel reaches the person (every one NO_CHAT or GONE — a blocked bot is
  remembered on the client by Outbound and never retried).

Rows of one round are sent concurrently (`concurrency`), so a slow messenger call does not
hold the others; the pacing keeps them within each bot's limits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.outbound import Delivery, Outbound, Recipient
from bot.visits.registry import Audience, Kinds
from core import visits
from core.backoff import BackoffPolicy, Clock
from core.visits import Due, kinds
from core.visits.wanted import later_for_quiet, reminder_in_flight, unwanted

log = logging.getLogger(__name__)

# How long a silent-client alert waits for a reminder of its visit that is being sent.
IN_FLIGHT_WAIT = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    batch_size: int = 200
    concurrency: int = 64
    max_attempts: int = 6
    retry: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(first=30.0, factor=2.0, cap=1800.0)
    )
    # Seconds between rounds when nothing was due.
    idle: float = 5.0
    # How often the weekly digests are planned.
    digest_every: timedelta = timedelta(minutes=10)


class Dispatcher:
    def __init__(
        self,
        outbound: Outbound,
        registry: Kinds,
        *,
        clock: Clock | None = None,
        policy: DispatchPolicy | None = None,
    ) -> None:
        self.outbound = outbound
        self.registry = registry
        self.clock = clock or Clock()
        self.policy = policy or DispatchPolicy()
        self.outcomes: Counter[str] = Counter()
        self._digests_at: datetime | None = None
        self.wake = asyncio.Event()

    async def run(self) -> None:
        """Rounds until cancelled; a round that fails is logged and the loop goes on."""
        while True:
            try:
                await self.plan_digests()
                handled = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("visit loop: a dispatch round failed")
                handled = 0
            if handled < self.policy.batch_size:
                await self._idle()

    async def _idle(self) -> None:
        self.wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(self.policy.idle))
        waker = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def plan_digests(self) -> None:
        if kinds.DIGEST not in self.registry:
            return
        now = self.clock.now()
        if self._digests_at is not None and now - self._digests_at < self.policy.digest_every:
            return
        self._digests_at = now
        await visits.plan_digests(now)

    async def round(self) -> int:
        """Claim one batch and send it; how many rows were handled."""
        claimed = await visits.due_messages(
            self.clock.now(), limit=self.policy.batch_size, kinds_known=list(self.registry)
        )
        if not claimed:
            return 0
        gate = asyncio.Semaphore(self.policy.concurrency)

        async def one(due: Due) -> None:
            async with gate:
                try:
                    outcome = await self.send(due)
                except Exception as exc:
                    log.exception("visit loop: row %s (%s) failed", due.row.id, due.row.kind)
                    outcome = await self._retry(due, f"{type(exc).__name__}: {exc}")
                self.outcomes[outcome] += 1

        await asyncio.gather(*(one(due) for due in claimed))
        return len(claimed)

    async def send(self, due: Due) -> str:
        """Send one claimed row and mark it; returns the row's new status."""
        row = due.row
        now = self.clock.now()
        kind = self.registry.get(row.kind)
        if await reminder_in_flight(due, now):
            await visits.mark_retry(
                row, now + IN_FLIGHT_WAIT, "a reminder is on its way", attempt_spent=False
            )
            return row.status
        why = "no handler for this kind" if kind is None else await unwanted(due, now)
        if why is not None:
            await visits.mark_dropped(row, why)
            return row.status
        later = later_for_quiet(due, now)
        if later is not None:
            visit_at = due.booking.visit_at if due.booking is not None else None
            if row.kind in kinds.PER_VISIT and visit_at is not None and later >= visit_at:
                await visits.mark_dropped(row, "quiet hours until the visit")
            else:
                await visits.mark_retry(row, later, "quiet hours", attempt_spent=False)
            return row.status
        if kind is None:  # for the type checker: dropped above
            raise RuntimeError("unreachable")
        compose = await kind.handler(due)
        if compose is None:
            await visits.mark_dropped(row, "nothing to say")
            return row.status
        if kind.audience is Audience.ADMINS:
            reached = await self.outbound.to_admins(row.company_id, compose)
            if reached:
                await visits.mark_sent(row, self.clock.now())
                return row.status
            return await self._retry(due, "no admin could be reached")
        if due.client is None:
            raise RuntimeError("a client message without a client passed the checks")
        recipient = Recipient.of_client(due.client, due.company)
        delivery, channel = await self.outbound.send(recipient, due.company, compose)
        if delivery is Delivery.SENT:
            await visits.mark_sent(row, self.clock.now(), channel)
        elif delivery is Delivery.RETRY:
            take = getattr(self.outbound.channels.get(channel or ""), "take_retry_after", None)
            hint = take(recipient) if callable(take) else None
            if hint is not None:
                # Flood control: not the message's fault, back in line after the wait.
                await visits.mark_retry(
                    row,
                    self.clock.now() + timedelta(seconds=hint),
                    f"{channel}: flood control, retry after {hint:g} s",
                    attempt_spent=False,
                )
                return row.status
            return await self._retry(due, f"{channel}: try again later")
        else:
            # GONE on every channel that knows the client, or none knows them: for good.
            await visits.mark_failed(row, f"no channel reaches the client ({delivery})")
        return row.status

    async def _retry(self, due: Due, why: str) -> str:
        row = due.row
        if row.attempts >= self.policy.max_attempts:
            await visits.mark_failed(row, f"{why} (gave up after {row.attempts} attempts)")
            return row.status
        delay = self.policy.retry.delay(row.attempts, self.clock.random())
        await visits.mark_retry(row, self.clock.now() + timedelta(seconds=delay), why)
        return row.status
