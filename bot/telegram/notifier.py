"""Balance notices to clients in Telegram, in each client's language.

A client who blocked the bot makes Telegram answer 403: the client is marked unreachable and
nothing more is sent to them until they write again. Flood control is waited out once when
short; any other failure is logged and the notice dropped — never retried forever, never
raised into whoever changed the balance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter

from core.i18n import pick_locale
from core.models import Client, Company
from core.notifications import BalanceNotice, render

log = logging.getLogger(__name__)


class TelegramNotifier:
    def __init__(self, bot: Bot, *, max_wait: float = 5.0) -> None:
        self.bot = bot
        # The longest flood-control wait worth sitting out for one notice.
        self.max_wait = max_wait

    async def notify(self, notices: Sequence[BalanceNotice]) -> None:
        ids = {n.client_id for n in notices}
        clients = {c.id: c for c in await Client.filter(id__in=ids).select_related("company")}
        for notice in notices:
            client = clients.get(notice.client_id)
            if client is None:
                log.info("notice for client %s: no such client", notice.client_id)
                continue
            await self.deliver(client, client.company, [notice])

    async def deliver(
        self, client: Client, company: Company, notices: Sequence[BalanceNotice]
    ) -> None:
        if client.telegram_user_id is None:
            log.info("notice for client %s: no Telegram chat", client.id)
            return
        locale = pick_locale(client.locale, company.default_locale)
        for notice in notices:
            if client.telegram_unreachable_at is not None:
                log.info("notice for client %s: bot blocked, not sent", client.id)
                return
            await self._send(client, render(notice, locale))

    async def _send(self, client: Client, text: str) -> None:
        if client.telegram_user_id is None:
            raise RuntimeError("a Telegram notice to a client without a Telegram id")
        for attempt in range(2):
            try:
                await self.bot.send_message(chat_id=client.telegram_user_id, text=text)
                return
            except TelegramForbiddenError:
                log.info("client %s blocked the bot: marked unreachable", client.id)
                client.telegram_unreachable_at = datetime.now(UTC)
                await Client.filter(id=client.id).update(
                    telegram_unreachable_at=client.telegram_unreachable_at
                )
                return
            except TelegramRetryAfter as exc:
                if attempt or exc.retry_after > self.max_wait:
                    log.warning("notice for client %s dropped: %s", client.id, exc)
                    return
                await asyncio.sleep(exc.retry_after)
            except TelegramAPIError as exc:
                log.warning("notice for client %s not delivered: %s", client.id, exc)
                return
