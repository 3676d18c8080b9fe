"""Balance notices to clients in Telegram, in each client's language.

A client who blocked the bot makes Telegram answer 403: the client is marked unreachable and
nothing more is sent to them until they write again. Flood control is waited out once when
short; any other failure is logged and the notice dropped — never retried forever, never
raised into whoever changed the balance.

A client whose chat is with the salon's own bot hears through that bot (each bot has its own
flood limit, and a bot may write only to people who started it); the others through the
shared bot. A salon bot whose token Telegram refuses (401) is reported to `salon_bots`, which
switches it off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)

from bot.telegram.salon_bots import SalonBots
from core.i18n import pick_locale
from core.models import Client, Company
from core.notifications import BalanceNotice, render

log = logging.getLogger(__name__)


class TelegramNotifier:
    def __init__(
        self, bot: Bot | None, salon_bots: SalonBots | None = None, *, max_wait: float = 5.0
    ) -> None:
        # The shared bot; None while TELEGRAM_BOT_TOKEN is unset (salons' own bots still work).
        self.bot = bot
        self.salon_bots = salon_bots
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
        bot = self.bot_for(client, company)
        if bot is None:
            log.info("notice for client %s: the Telegram bot of their chat is off", client.id)
            return
        locale = pick_locale(client.locale, company.default_locale)
        for notice in notices:
            if client.telegram_unreachable_at is not None:
                log.info("notice for client %s: bot blocked, not sent", client.id)
                return
            await self._send(bot, client, render(notice, locale))

    def bot_for(self, client: Client, company: Company) -> Bot | None:
        if self.salon_bots is None:
            return self.bot
        return self.salon_bots.bot_for(company.id, client.telegram_bot_id, self.bot)

    async def _send(self, bot: Bot, client: Client, text: str) -> None:
        if client.telegram_user_id is None:
            raise RuntimeError("a Telegram notice to a client without a Telegram id")
        for attempt in range(2):
            try:
                await bot.send_message(chat_id=client.telegram_user_id, text=text)
                return
            except TelegramUnauthorizedError:
                refused = self.salon_bots.refused_bot(bot) if self.salon_bots else None
                log.warning(
                    "notice for client %s not delivered: the bot's token is refused", client.id
                )
                if refused is not None and self.salon_bots is not None:
                    await self.salon_bots.refused(refused)
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
