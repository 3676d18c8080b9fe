"""A person blocking or unblocking the bot (Telegram's my_chat_member updates)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import Router
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated

from core.models import Client


async def blocked_handler(event: ChatMemberUpdated) -> None:
    # Notices to them would only fail: stop sending until they write again.
    await Client.filter(telegram_user_id=event.from_user.id).update(
        telegram_unreachable_at=datetime.now(UTC)
    )


async def unblocked_handler(event: ChatMemberUpdated) -> None:
    await Client.filter(telegram_user_id=event.from_user.id).update(telegram_unreachable_at=None)


def get_router() -> Router:
    router = Router(name="membership")
    router.my_chat_member.register(blocked_handler, ChatMemberUpdatedFilter(KICKED))
    router.my_chat_member.register(unblocked_handler, ChatMemberUpdatedFilter(MEMBER))
    return router
