"""Balance notices to clients in MAX, in each client's language.

Only clients who shared their phone in MAX have a MAX user id. A client who blocked or stopped
the bot makes MAX answer 403 `chat.denied`: the client is marked unreachable and nothing more is
sent there until they write again. Flood control (429) is waited out by the client
(core.max); any other failure is logged and the notice dropped, never raised into whoever
changed the balance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.max.channel import mark_unreachable
from core.i18n import pick_locale
from core.max import MaxBlocked, MaxClient, MaxError
from core.models import Client, Company
from core.notifications import BalanceNotice, render

log = logging.getLogger(__name__)


class MaxNotifier:
    def __init__(self, client: MaxClient) -> None:
        self.client = client

    async def deliver(
        self, client: Client, company: Company, notices: Sequence[BalanceNotice]
    ) -> None:
        user_id = client.max_user_id
        if user_id is None:
            log.info("notice for client %s: no MAX chat", client.id)
            return
        if client.max_unreachable_at is not None:
            log.info("notice for client %s: MAX bot blocked, not sent", client.id)
            return
        locale = pick_locale(client.locale, company.default_locale)
        for notice in notices:
            try:
                await self.client.send(user_id, {"text": render(notice, locale)})
            except MaxBlocked:
                log.info("client %s blocked the MAX bot: marked unreachable", client.id)
                await mark_unreachable(user_id)
                return
            except MaxError as exc:
                log.warning("notice for client %s not delivered in MAX: %s", client.id, exc)
                return
