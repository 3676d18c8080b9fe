"""Sending at the pace a messenger allows, on the injected clock.

Telegram allows a bot about 30 messages a second and one a second per chat, and answers 429
with `retry_after` past that. `Paced` wraps a ClientChannel with a token bucket per bot and a
gap per chat; a RETRY from the channel (its flood control) holds the whole bucket for the
`retry_after` the channel reports (bot.outbound.retry_after(), when it names one) or a
second. WhatsApp's adapter paces itself (bot/whatsapp/outbox.py), so its channel goes
unwrapped.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.dialog.replies import Reply
from bot.outbound import ClientChannel, Delivery, Recipient, retry_after
from core.backoff import Clock
from core.models import Company

TELEGRAM_PER_SECOND = 30.0
TELEGRAM_CHAT_GAP = 1.0


class TokenBucket:
    """At most `rate` sends in any one second (Telegram counts a sliding second, not whole
    ones), evenly spaced: each taker reserves the next free slot before it sleeps, so a late
    wake-up costs no one else their turn; and the sends actually started in the last second
    are counted too, so takers that woke late cannot bunch past the limit. `hold(s)` moves
    the next slot s from now (flood control)."""

    # Telegram counts arrivals: a little margin for the way there.
    WINDOW = timedelta(seconds=1.02)

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        self.clock = clock
        self.next_slot = clock.now()
        self._started: collections.deque[datetime] = collections.deque()

    async def take(self) -> None:
        now = self.clock.now()
        slot = max(self.next_slot, now)
        self.next_slot = slot + timedelta(seconds=1.0 / self.rate)
        wait = (slot - now).total_seconds()
        if wait > 0:
            await self.clock.sleep(wait)
        while True:
            now = self.clock.now()
            while self._started and now - self._started[0] >= self.WINDOW:
                self._started.popleft()
            if len(self._started) < self.rate:
                self._started.append(now)
                return
            await self.clock.sleep((self._started[0] + self.WINDOW - now).total_seconds())

    def hold(self, seconds: float) -> None:
        until = self.clock.now() + timedelta(seconds=seconds)
        self.next_slot = max(self.next_slot, until)


class Paced:
    """A ClientChannel sending within a bot's limits: a bucket per bot (a salon's own bot has
    a limit of its own; the channel may say which bot serves a salon with `bot_key(company)`).
    Replicas pace independently: with R replicas sending for one bot, give each
    `per_second / R` (the TELEGRAM_SEND_RATE setting)."""

    def __init__(
        self,
        inner: ClientChannel,
        clock: Clock,
        *,
        per_second: float = TELEGRAM_PER_SECOND,
        chat_gap: float = TELEGRAM_CHAT_GAP,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = clock
        self.per_second = per_second
        self.chat_gap = chat_gap
        self.buckets: dict[str, TokenBucket] = {}
        self._chats: dict[str, datetime] = {}
        self._chat_locks: dict[str, asyncio.Lock] = {}
        self.holds = 0
        # Chat -> the flood-control wait its last RETRY came with (take_retry_after).
        self._waits: dict[str, float] = {}

    def _bucket(self, company: Company) -> TokenBucket:
        key_of = getattr(self.inner, "bot_key", None)
        key = str(key_of(company)) if callable(key_of) else self.name
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.per_second, self.clock)
        return bucket

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        chat = to.addresses.get(self.name, "")
        lock = self._chat_locks.setdefault(chat, asyncio.Lock())
        async with lock:
            last = self._chats.get(chat)
            if last is not None:
                wait = self.chat_gap - (self.clock.now() - last).total_seconds()
                if wait > 0:
                    await self.clock.sleep(wait)
            bucket = self._bucket(company)
            # One token per message: a notice of two replies is two sends.
            for _reply in replies:
                await bucket.take()
            self._waits.pop(chat, None)
            result = await self.inner.send(to, company, replies)
            self._chats[chat] = self.clock.now()
            if len(self._chats) > 50_000:
                self._forget_old_chats()
            if result is Delivery.RETRY:
                # The channel says it in this task's send note (bot.outbound); a test channel
                # may keep it on itself.
                asked = retry_after() or getattr(self.inner, "last_retry_after", None)
                wait = float(asked) if asked else 1.0
                self._waits[chat] = wait
                bucket.hold(wait)
                self.holds += 1
            return result

    def take_retry_after(self, to: Recipient) -> float | None:
        """The flood-control wait behind the last RETRY to `to`, once; None when that RETRY
        was no flood control (a network error, a 5xx)."""
        return self._waits.pop(to.addresses.get(self.name, ""), None)

    def _forget_old_chats(self) -> None:
        horizon = self.clock.now() - timedelta(seconds=self.chat_gap)
        for chat, at in list(self._chats.items()):
            if at < horizon:
                del self._chats[chat]
                lock = self._chat_locks.get(chat)
                if lock is not None and not lock.locked():
                    del self._chat_locks[chat]
