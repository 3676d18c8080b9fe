"""A person blocking or unblocking the bot (Telegram's my_chat_member updates)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated

from bot.dialog import TELEGRAM
from bot.outbound import back_on, gone_for


async def blocked_handler(event: ChatMemberUpdated) -> None:
    # Messages to them would only fail: bot.outbound falls back to their other channels until
    # they write again.
    await gone_for(TELEGRAM.name, telegram_user_id=event.from_user.id)


async def unblocked_handler(event: ChatMemberUpdated) -> None:
    await back_on(TELEGRAM.name, telegram_user_id=event.from_user.id)


def get_router() -> Router:
    router = Router(name="membership")
    router.my_chat_member.register(blocked_handler, ChatMemberUpdatedFilter(KICKED))
    router.my_chat_member.register(unblocked_handler, ChatMemberUpdatedFilter(MEMBER))
    return router
