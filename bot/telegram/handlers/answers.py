"""An admin's reply to a client's question the bot passed on (bot.dialog.questions): the reply
goes back to the client. A reply to any other message of the bot reads as usual."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.types import Message

from bot.dialog import TELEGRAM, Dialog, Session
from bot.telegram.filters import RepliesToBot
from bot.telegram.render import send_replies


async def answer_handler(
    message: Message, replied_id: int, session: Session, dialog: Dialog, bot: Bot
) -> None:
    replies = await dialog.relayed_answer(
        session, TELEGRAM.name, str(message.chat.id), str(replied_id), message.text or ""
    )
    if replies is None:
        raise SkipHandler
    await send_replies(bot, message.chat.id, replies)


def get_router() -> Router:
    router = Router(name="answers")
    router.message.register(answer_handler, RepliesToBot())
    return router
