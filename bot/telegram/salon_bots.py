"""The salons' own Telegram bots, as the database lists them, in one process.

One Dispatcher serves every bot (aiogram feeds it updates with the Bot they came to): the
shared bot and each salon's own. `SalonBots` knows which bot is whose — `load()` brings it in
line with the `company` rows (a salon bot added, replaced or removed by `salonbot company set`
or the owner's page), `company_of(bot_id)` tells the Telegram adapter that an update to that
bot belongs to its salon, `by_key` finds a bot for its webhook route, and `bot_for` picks the
bot a notice to a client goes through. web.salon_bots runs them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.utils.token import TokenValidationError

from core.models import Company
from core.salon_bot import webhook_secret

log = logging.getLogger(__name__)


@dataclass(eq=False)
class SalonBot:
    company_id: int
    # The opaque key of its webhook route (/webhook/telegram/bot/<key>).
    key: str
    # Kept to notice a replaced token, and to switch off exactly the token Telegram refused.
    token: str
    username: str | None
    bot: Bot
    # What Telegram sends as X-Telegram-Bot-Api-Secret-Token with this bot's updates.
    secret: str

    def __repr__(self) -> str:  # never the token
        return f"SalonBot(company={self.company_id}, bot={self.bot.id})"


Refused = Callable[[SalonBot], Awaitable[None]]


class SalonBots:
    def __init__(self, api_url: str, secret_key: str) -> None:
        self.secret_key = secret_key
        # One HTTP session (one connection pool) for every salon bot: a request carries its
        # bot's token, so thousands of bots need no pool each.
        self.session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
        self._by_company: dict[int, SalonBot] = {}
        self._by_key: dict[str, SalonBot] = {}
        self._by_bot_id: dict[int, SalonBot] = {}
        # Called when Telegram refuses a salon bot's token (web.salon_bots switches it off).
        self.on_refused: Refused | None = None

    def __iter__(self) -> Iterator[SalonBot]:
        return iter(list(self._by_company.values()))

    def __len__(self) -> int:
        return len(self._by_company)

    def company_of(self, bot_id: int) -> int | None:
        """The salon whose own bot this is; None for the shared bot."""
        found = self._by_bot_id.get(bot_id)
        return found.company_id if found else None

    def by_key(self, key: str) -> SalonBot | None:
        return self._by_key.get(key)

    def of_company(self, company_id: int) -> SalonBot | None:
        return self._by_company.get(company_id)

    def bot_for(self, company_id: int, client_bot_id: int | None, shared: Bot | None) -> Bot | None:
        """The bot a message to a client of `company_id` goes through: the one their chat is
        with (a bot may write only to people who started it). The salon's own when that is
        it; the shared bot for a chat with it (or one recorded before bots were told apart);
        None when their chat is with a salon bot that is off now."""
        own = self._by_company.get(company_id)
        if own is not None and client_bot_id == own.bot.id:
            return own.bot
        if client_bot_id is None or (shared is not None and client_bot_id == shared.id):
            return shared
        return None

    async def load(self) -> tuple[list[SalonBot], list[SalonBot]]:
        """Bring the registry in line with the database: (started, stopped) bots. A replaced
        token is both: the old bot stops and the new one starts."""
        rows = await Company.filter(
            telegram_bot_token__isnull=False, telegram_bot_key__isnull=False
        ).values_list("id", "telegram_bot_token", "telegram_bot_key", "telegram_bot_username")
        wanted = {int(cid): (str(token), str(key), username) for cid, token, key, username in rows}
        stopped = [
            found
            for cid, found in self._by_company.items()
            if wanted.get(cid, (None, None))[:2] != (found.token, found.key)
        ]
        for found in stopped:
            self.forget(found)
        started = []
        for cid, (token, key, username) in wanted.items():
            if cid in self._by_company:
                continue
            try:
                bot = self._bot(token)
            except TokenValidationError:
                # Stored by hand past core.salon_bot's check: it can never work.
                log.warning("salon bot of company %s: the stored token is malformed", cid)
                continue
            found = SalonBot(cid, key, token, username, bot, webhook_secret(self.secret_key, key))
            self._by_company[cid] = found
            self._by_key[key] = found
            self._by_bot_id[bot.id] = found
            started.append(found)
        return started, stopped

    def forget(self, found: SalonBot) -> None:
        if self._by_company.get(found.company_id) is found:
            del self._by_company[found.company_id]
        if self._by_key.get(found.key) is found:
            del self._by_key[found.key]
        if self._by_bot_id.get(found.bot.id) is found:
            del self._by_bot_id[found.bot.id]

    async def refused(self, found: SalonBot) -> None:
        """Telegram answered 401 to this bot: its token was revoked or replaced."""
        if self.on_refused is not None:
            await self.on_refused(found)

    def refused_bot(self, bot: Bot) -> SalonBot | None:
        found = self._by_bot_id.get(bot.id)
        return found if found is not None and found.bot is bot else None

    async def close(self) -> None:
        for found in list(self._by_company.values()):
            self.forget(found)
        await self.session.close()

    def _bot(self, token: str) -> Bot:
        return Bot(token, session=self.session)
