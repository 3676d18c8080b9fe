"""Balance notices go to the channel each client used last (`Client.last_channel`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from bot.companies import CompanyCache
from core.models import Client, Company
from core.notifications import BalanceNotice, Notifier

log = logging.getLogger(__name__)


class ChannelNotifier(Protocol):
    async def deliver(
        self, client: Client, company: Company, notices: Sequence[BalanceNotice]
    ) -> None:
        """Tell `client` (of `company`) about `notices`."""


class RoutingNotifier:
    """Hands each client's notices to the notifier of the client's last channel; a client who
    never used a channel that is on (one only seen in YClients) goes to `fallback`."""

    def __init__(
        self,
        channels: Mapping[str, ChannelNotifier],
        fallback: Notifier,
        companies: CompanyCache | None = None,
    ) -> None:
        self.channels = dict(channels)
        self.fallback = fallback
        self.companies = companies or CompanyCache()

    async def notify(self, notices: Sequence[BalanceNotice]) -> None:
        if not notices:
            return
        ids = {n.client_id for n in notices}
        clients = {c.id: c for c in await Client.filter(id__in=ids)}
        unrouted: list[BalanceNotice] = []
        per_client: dict[int, list[BalanceNotice]] = {}
        for notice in notices:
            client = clients.get(notice.client_id)
            if client is None or client.last_channel not in self.channels:
                unrouted.append(notice)
            else:
                per_client.setdefault(client.id, []).append(notice)
        for client_id, group in per_client.items():
            client = clients[client_id]
            try:
                company = await self.companies.get(client.company_id)
                if company is None:
                    continue
                await self.channels[str(client.last_channel)].deliver(client, company, group)
            except Exception:
                # One client's failure must not keep the others' notices back.
                log.exception("notices for client %s not delivered", client_id)
        if unrouted:
            await self.fallback.notify(unrouted)
