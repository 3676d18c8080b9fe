"""The inbox worker: a task that drains the inbox for the life of the app.

It claims due events, hands each to its source's handler (core.inbox; a source may take its
events together, as YClients record events of one salon are, see `inbox.process_all`), and
tells clients about balance changes only after the handler's work has committed. It wakes at
once when a webhook stores an event (INBOX_WAKEUP) and otherwise polls, which also picks up
retries whose backoff has passed and events whose lease ran out. At shutdown the task is
cancelled: an event in hand keeps its lease, which expires, and it is tried again after the
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from core import inbox
from core.inbox import Handlers, InboxPolicy
from core.models import InboxStatus
from core.notifications import notify_committed
from web.keys import INBOX_HANDLERS, INBOX_POLICY, INBOX_WAKEUP, METRICS, NOTIFIER

log = logging.getLogger(__name__)

_OUTCOMES = {InboxStatus.DONE: "done", InboxStatus.PENDING: "retry", InboxStatus.DEAD: "dead"}


class InboxWorker:
    def __init__(
        self,
        app: web.Application,
        policy: InboxPolicy,
        handlers: Handlers,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.app = app
        self.policy = policy
        self.handlers = handlers
        self.wakeup = app[INBOX_WAKEUP]
        # The gathering's time (the same clock as the wakeup's `last_bulk`); tests move it.
        self.clock = clock
        self.sleep = sleep
        self.stopping = False

    async def run_once(self, policy: InboxPolicy | None = None) -> int:
        """One claimed batch, processed in order; the number of events claimed."""
        events = await inbox.claim(policy or self.policy)
        metrics = self.app[METRICS]
        # A source's batch takes its events together (core.inbox.process_all); each outcome
        # comes once its work has committed.
        outcomes = inbox.process_all(events, self.handlers, self.policy, stop=self._stopping)
        async with contextlib.aclosing(outcomes):
            async for outcome in outcomes:
                source = outcome.event.source
                metrics.inbox_processed.labels(source, _OUTCOMES[outcome.status]).inc()
                if outcome.error is not None:
                    metrics.inbox_failures.labels(source).inc()
                await notify_committed(self.app[NOTIFIER], outcome.changes)
        return len(events)

    def _stopping(self) -> bool:
        # The rest of the batch keeps its lease and is taken again after it runs out.
        return self.stopping

    async def _gather(self) -> InboxPolicy:
        """While a burst of bulk events is arriving, wait for a pause (InboxPolicy.gather_*);
        the policy for the next batch: as it is after a pause, or with the small burst batch
        when `gather_max` ran out first. Outside a burst this returns at once."""
        policy = self.policy
        deadline = self.clock() + policy.gather_max
        while not self.stopping:
            now = self.clock()
            quiet_for = now - self.wakeup.last_bulk
            if quiet_for >= policy.gather_quiet:
                return policy
            if now >= deadline:
                return dataclasses.replace(policy, batch_size=policy.burst_batch_size)
            await self.sleep(min(policy.gather_quiet - quiet_for, deadline - now))
        return policy

    async def run(self) -> None:
        while not self.stopping:
            policy = await self._gather()
            # Cleared before the claim, so an event stored while a batch runs wakes the next.
            self.wakeup.clear()
            try:
                claimed = await self.run_once(policy)
            except Exception:
                log.exception(
                    "inbox worker pass failed; next try in %ss", self.policy.poll_interval
                )
                claimed = 0
            if claimed >= self.policy.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.policy.poll_interval):
                    await self.wakeup.wait()


async def inbox_worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the ORM and the channels (NOTIFIER): list it after orm_ctx and channels_ctx
    (teardown runs in reverse, so it stops first)."""
    worker = InboxWorker(app, app[INBOX_POLICY], app[INBOX_HANDLERS])
    task = asyncio.create_task(worker.run(), name="inbox-worker")
    yield
    # The flag as well as the cancel: Python 3.11's asyncio.wait_for drops a cancellation that
    # lands as its future completes (it hung shutdown here), and a library may do the same.
    worker.stopping = True
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        log.error("the inbox worker ended with an error", exc_info=task.exception())
