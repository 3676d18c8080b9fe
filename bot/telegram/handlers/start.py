"""/start, with or without a deep-link payload (`salon-<yclients_id>`, `staff-<token>`)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message

from bot.dialog import Dialog, Session
from bot.telegram.render import send_replies


async def command_start_handler(
    message: Message, command: CommandObject, session: Session, dialog: Dialog, bot: Bot
) -> None:
    replies = await dialog.start(session, command.args)
    await send_replies(bot, message.chat.id, replies)


def get_router() -> Router:
    router = Router(name="start")
    router.message.register(command_start_handler, CommandStart())
    return router
