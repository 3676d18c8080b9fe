"""Telegram as a bot.outbound ClientChannel: messages nobody just asked for, through the bot
the person's chat is with — the salon's own bot for a client who talks to it, the shared bot
otherwise (and for staff, whose invites and alerts go through the shared bot)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from bot.dialog.replies import Reply
from bot.outbound import Delivery, Recipient
from bot.telegram.render import send_replies
from bot.telegram.salon_bots import SalonBots
from core.models import Client, Company

log = logging.getLogger(__name__)


class TelegramChannel:
    name = "telegram"

    def __init__(self, shared: Bot | None, salon_bots: SalonBots | None = None) -> None:
        self.shared = shared
        self.salon_bots = salon_bots

    async def bot_for(self, to: Recipient, company: Company) -> Bot | None:
        if to.client_id is None or self.salon_bots is None:
            return self.shared
        client = await Client.get_or_none(id=to.client_id).only("id", "telegram_bot_id")
        client_bot_id = client.telegram_bot_id if client is not None else None
        return self.salon_bots.bot_for(company.id, client_bot_id, self.shared)

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        address = to.addresses.get(self.name)
        bot = await self.bot_for(to, company) if address else None
        if address is None or bot is None:
            return Delivery.NO_CHAT
        try:
            await send_replies(bot, int(address), replies)
        except TelegramForbiddenError:
            return Delivery.GONE  # blocked the bot, or never started it
        except TelegramUnauthorizedError:
            refused = self.salon_bots.refused_bot(bot) if self.salon_bots else None
            if refused is not None and self.salon_bots is not None:
                await self.salon_bots.refused(refused)
            log.warning("telegram: a bot's token is refused; nothing sent to %s", to.client_id)
            return Delivery.NO_CHAT
        except (TelegramRetryAfter, TelegramNetworkError, TelegramServerError):
            return Delivery.RETRY
        except TelegramBadRequest as exc:
            # "chat not found" and kin: this chat will not take messages from this bot.
            log.info("telegram: message refused: %s", exc.message)
            return Delivery.GONE
        return Delivery.SENT
