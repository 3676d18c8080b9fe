"""Sending over the salon's WhatsApp number with the manners that keep numbers from being banned.

Each answer is handed over at once and sent in the background: first the person's message is
marked seen, then (with a pause configured) "typing…" for a short random while, then the
messages, each waiting for the salon's rate limit. The messages of one chat leave in the order
they were handed over; different chats and salons go side by side, at most `concurrency`
requests to the gateway at a time.

A failed send is logged, counted and written on the chat (`WhatsAppChat.send_error`), and
never retried: the gateway cannot say whether a send that timed out went through, and a person
reading the same answer twice, or a late answer after the next one, is worse than one lost
answer. The rest of that answer is dropped with it, so nothing arrives out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.models import WhatsAppChat
from core.phones import mask_chat_id
from core.whatsapp import GatewayError, WhatsAppGateway

log = logging.getLogger(__name__)

# What a send was (a reply to a message, or a balance notice) and how it went: for metrics.
ResultHook = Callable[[str, bool], None]


@dataclass(frozen=True, slots=True)
class Manners:
    # The longest random pause before a message, "typing…" meanwhile; 0 sends at once.
    pause: float = 2.0
    # Messages a minute one salon's number sends at most, with `burst` allowed at once; 0: no
    # limit.
    rate: float = 20.0
    burst: int = 5
    # Gateway requests in flight at once, every salon together.
    concurrency: int = 8


@dataclass(frozen=True, slots=True)
class Outgoing:
    text: str
    png: bytes | None = None
    filename: str = "code.png"


@dataclass(slots=True)
class _Job:
    kind: str
    company_id: int
    session: str
    chat_id: str
    messages: Sequence[Outgoing]
    seen_id: str | None = None
    # Set for a send whose sender waits for the outcome: the sent messages' ids, or the
    # gateway's error.
    outcome: asyncio.Future[list[str]] | None = None
    sent_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class OutboxClosed(Exception):
    """The outbox stopped taking messages (the process is shutting down)."""


def _settle(job: _Job, error: BaseException | None) -> None:
    """Tell a sender who waits how its job went (a job is settled once)."""
    if job.outcome is None or job.outcome.done():
        return
    if error is None:
        job.outcome.set_result(list(job.sent_ids))
    else:
        job.outcome.set_exception(error)


class RateLimiter:
    """A token bucket per salon session: `rate` a minute, `burst` at once."""

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_second = rate_per_minute / 60
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, key: str) -> None:
        if self.per_second <= 0:
            return
        # One waiter at a time per session, so the earliest message gets the next token.
        async with self._locks.setdefault(key, asyncio.Lock()):
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), self._clock())
            while True:
                now = self._clock()
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_second)
                bucket.at = now
                if bucket.tokens >= 1:
                    bucket.tokens -= 1
                    return
                await self._sleep((1 - bucket.tokens) / self.per_second)


class Outbox:
    def __init__(
        self,
        gateway: WhatsAppGateway,
        manners: Manners | None = None,
        *,
        on_result: ResultHook | None = None,
    ) -> None:
        self.gateway = gateway
        self.manners = manners or Manners()
        self.limiter = RateLimiter(self.manners.rate, self.manners.burst)
        self.on_result = on_result
        self._slots = asyncio.Semaphore(max(1, self.manners.concurrency))
        self._queues: dict[tuple[str, str], deque[_Job]] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.closed = False

    def answer(
        self,
        company_id: int,
        session: str,
        chat_id: str,
        message_id: str | None,
        messages: Sequence[Outgoing],
    ) -> None:
        """Answer a message the person sent (marked seen first)."""
        self._submit(_Job("reply", company_id, session, chat_id, messages, message_id))

    async def send(
        self, company_id: int, session: str, chat_id: str, messages: Sequence[Outgoing]
    ) -> list[str]:
        """A message the salon sends on its own (a notice, a reminder, an admin's answer), in
        the chat's order and with the same manners, awaited: returns the ids of the messages
        sent; raises the gateway's error (GatewayError) when it failed, OutboxClosed while
        shutting down."""
        outcome: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._submit(_Job("notice", company_id, session, chat_id, messages, outcome=outcome))
        return await outcome

    def _submit(self, job: _Job) -> None:
        if self.closed:
            log.warning(
                "WhatsApp %s to %s dropped: shutting down", job.kind, mask_chat_id(job.chat_id)
            )
            if job.outcome is not None:
                job.outcome.set_exception(OutboxClosed("the WhatsApp outbox is shutting down"))
            return
        if not job.messages and job.outcome is not None:
            job.outcome.set_result([])
            return
        if not job.messages and job.seen_id is None:
            return
        key = (job.session, job.chat_id)
        self._queues.setdefault(key, deque()).append(job)
        if key not in self._tasks:
            self._idle.clear()
            self._tasks[key] = asyncio.create_task(self._drain(key), name=f"whatsapp-{key}")

    async def _drain(self, key: tuple[str, str]) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job = queue.popleft()
                try:
                    await self._deliver(job)
                except asyncio.CancelledError:
                    _settle(job, OutboxClosed("the WhatsApp outbox is shutting down"))
                    for waiting in queue:
                        _settle(waiting, OutboxClosed("the WhatsApp outbox is shutting down"))
                    raise
                except Exception as exc:
                    log.exception(
                        "WhatsApp %s to %s failed unexpectedly", job.kind, mask_chat_id(job.chat_id)
                    )
                    _settle(job, exc)
                else:
                    _settle(job, None)
        finally:
            del self._queues[key]
            del self._tasks[key]
            if not self._tasks:
                self._idle.set()

    async def _deliver(self, job: _Job) -> None:
        if job.seen_id is not None:
            try:
                async with self._slots:
                    await self.gateway.send_seen(job.session, job.chat_id, job.seen_id)
            except GatewayError as exc:
                # A courtesy: the answer still goes out.
                log.info("WhatsApp: marking %s seen failed: %s", mask_chat_id(job.chat_id), exc)
        typing = self.manners.pause > 0 and bool(job.messages)
        if typing:
            typing = await self._quietly(self.gateway.start_typing(job.session, job.chat_id))
        try:
            for index, message in enumerate(job.messages):
                if self.manners.pause > 0:
                    longest = self.manners.pause if index == 0 else self.manners.pause / 2
                    await asyncio.sleep(random.uniform(longest / 2, longest))  # noqa: S311
                await self.limiter.wait(job.session)
                try:
                    async with self._slots:
                        await self._send(job, message)
                except GatewayError as exc:
                    await self._failed(job, exc, len(job.messages) - index)
                    _settle(job, exc)
                    return
                if self.on_result is not None:
                    self.on_result(job.kind, True)
        finally:
            if typing:
                await self._quietly(self.gateway.stop_typing(job.session, job.chat_id))

    async def _send(self, job: _Job, message: Outgoing) -> None:
        if message.png is not None:
            sent = await self.gateway.send_image(
                job.session, job.chat_id, message.png, message.filename, message.text or None
            )
        else:
            sent = await self.gateway.send_text(job.session, job.chat_id, message.text)
        if sent:
            job.sent_ids.append(sent)

    async def _quietly(self, call: Awaitable[None]) -> bool:
        try:
            async with self._slots:
                await call
        except GatewayError as exc:
            log.info("WhatsApp typing indicator failed: %s", exc)
            return False
        return True

    async def _failed(self, job: _Job, exc: GatewayError, lost: int) -> None:
        log.warning(
            "WhatsApp %s to %s via %s not sent (%d message(s) dropped, not retried): %s",
            job.kind,
            mask_chat_id(job.chat_id),
            job.session,
            lost,
            exc,
        )
        if self.on_result is not None:
            for _ in range(lost):
                self.on_result(job.kind, False)
        try:
            await WhatsAppChat.filter(company_id=job.company_id, chat_id=job.chat_id).update(
                send_failed_at=datetime.now(UTC), send_error=f"{type(exc).__name__}: {exc}"[:2000]
            )
        except Exception:
            log.exception(
                "WhatsApp: recording a failed send to %s failed", mask_chat_id(job.chat_id)
            )

    async def idle(self) -> None:
        """Until everything handed over so far has been sent or given up on."""
        await self._idle.wait()

    async def close(self, grace: float = 5.0) -> None:
        """Stop taking answers; give those under way `grace` seconds, then drop the rest."""
        self.closed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), grace)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            log.warning("WhatsApp: %d chat(s) had answers left unsent at shutdown", len(tasks))
            await asyncio.gather(*tasks, return_exceptions=True)
