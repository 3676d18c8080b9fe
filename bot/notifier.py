"""Balance notices go out through bot.outbound: to the channel the client used last, falling
back to their other channels when that one failed for good (a blocked bot, a chat gone).

Flood control or a network error (RETRY) is tried again on the same channel a few times,
waiting what the channel asked for (when that is short); a notice that still cannot go out is
logged and dropped — it never turns the committed change that caused it into a failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.companies import CompanyCache
from bot.dialog import Reply
from bot.outbound import Delivery, Outbound, retry_after
from core.models import Client
from core.notifications import BalanceNotice, Notifier, render

log = logging.getLogger(__name__)


class RoutingNotifier:
    """Hands each client's notices to `outbound`; a client no channel that is on can reach
    (one only seen in YClients) goes to `fallback`."""

    def __init__(
        self,
        outbound: Outbound,
        fallback: Notifier,
        companies: CompanyCache | None = None,
        *,
        attempts: int = 3,
        max_wait: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.outbound = outbound
        self.fallback = fallback
        self.companies = companies or CompanyCache()
        # Tries on a channel that answers RETRY, and the longest wait worth sitting out.
        self.attempts = attempts
        self.max_wait = max_wait
        self.sleep = sleep

    async def notify(self, notices: Sequence[BalanceNotice]) -> None:
        if not notices:
            return
        ids = {n.client_id for n in notices}
        clients = {c.id: c for c in await Client.filter(id__in=ids)}
        unrouted: list[BalanceNotice] = []
        per_client: dict[int, list[BalanceNotice]] = {}
        for notice in notices:
            if notice.client_id in clients:
                per_client.setdefault(notice.client_id, []).append(notice)
            else:
                unrouted.append(notice)
        for client_id, group in per_client.items():
            try:
                outcome = await self._deliver(clients[client_id], group)
            except Exception:
                # One client's failure must not keep the others' notices back.
                log.exception("notices for client %s not delivered", client_id)
                continue
            if outcome is Delivery.NO_CHAT or outcome is Delivery.GONE:
                unrouted.extend(group)
            elif outcome is Delivery.RETRY:
                log.warning("notices for client %s dropped: the channel kept failing", client_id)
        if unrouted:
            await self.fallback.notify(unrouted)

    async def _deliver(self, client: Client, notices: Sequence[BalanceNotice]) -> Delivery:
        company = await self.companies.get(client.company_id)
        if company is None:
            return Delivery.NO_CHAT

        def compose(locale: str) -> list[Reply]:
            return [Reply(render(notice, locale)) for notice in notices]

        outcome = Delivery.RETRY
        for attempt in range(self.attempts):
            outcome, _channel = await self.outbound.client_send(client, compose, company)
            if outcome is not Delivery.RETRY or attempt + 1 == self.attempts:
                break
            wait = retry_after() or 0.0
            if wait > self.max_wait:
                break
            await self.sleep(wait)
            # The walk may have marked a channel gone meanwhile: read the card again.
            client = await Client.get_or_none(id=client.id) or client
        return outcome
