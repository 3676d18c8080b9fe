"""Telegram as a `ClientChannel` (bot.outbound): messages nobody just asked for, sent with the
same rendering as the answers (bot.telegram.render), and Telegram's refusals read as the
outcome a fallback needs.

- 403 (the person blocked the bot, or deleted their account) and 400 "chat not found" are
  for good: GONE, and bot.outbound remembers it on the client until they write again.
- 429 (flood control) is temporary: RETRY, with the wait Telegram asked for noted for the
  caller (bot.outbound.retry_after()).
- A network error or a 5xx is temporary too: RETRY.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.dialog import TELEGRAM, Reply
from bot.outbound import Delivery, Recipient, note_retry_after, note_sent
from bot.telegram.render import send_replies
from core.models import Company

log = logging.getLogger(__name__)

# Bad requests that mean the chat itself is not there (any other one is a bug of ours and is
# worth another try after a fix, not a verdict on the person).
_GONE_CHAT = ("chat not found", "user is deactivated", "peer_id_invalid", "bot was kicked")


class TelegramChannel:
    name = TELEGRAM.name

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        address = to.addresses.get(self.name)
        if address is None or not address.lstrip("-").isdigit():
            return Delivery.NO_CHAT
        try:
            for message_id in await send_replies(self.bot, int(address), replies):
                note_sent(str(message_id))
        except TelegramForbiddenError as exc:
            log.info("telegram: %s refused (%s): gone", _who(to), exc.message)
            return Delivery.GONE
        except (TelegramBadRequest, TelegramNotFound) as exc:
            if any(sign in exc.message.lower() for sign in _GONE_CHAT):
                log.info("telegram: %s has no chat (%s): gone", _who(to), exc.message)
                return Delivery.GONE
            log.warning("telegram: a message to %s was refused: %s", _who(to), exc.message)
            return Delivery.RETRY
        except TelegramRetryAfter as exc:
            log.info("telegram: flood control for %s, retry after %s s", _who(to), exc.retry_after)
            note_retry_after(float(exc.retry_after))
            return Delivery.RETRY
        except (TelegramNetworkError, TelegramServerError) as exc:
            log.info("telegram: sending to %s failed for now: %s", _who(to), exc)
            return Delivery.RETRY
        except TelegramAPIError as exc:
            log.warning("telegram: sending to %s failed: %s", _who(to), exc)
            return Delivery.RETRY
        return Delivery.SENT


def _who(to: Recipient) -> str:
    return f"client {to.client_id}" if to.client_id is not None else f"staff {to.staff_id}"
