"""The catch-all, included last on purpose: text that no command or label took (flow input
such as a code or an amount, or something the bot does not understand), buttons no other
router knows, and anything that is not text."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message

from bot.dialog import Dialog, Session
from bot.dialog.questions import Media
from bot.telegram.filters import ButtonData, HasText
from bot.telegram.handlers.buttons import button_handler
from bot.telegram.render import send_replies


async def text_handler(message: Message, session: Session, dialog: Dialog, bot: Bot) -> None:
    replies = await dialog.text(session, message.text or "")
    await send_replies(bot, message.chat.id, replies)


async def anything_handler(message: Message, session: Session, dialog: Dialog, bot: Bot) -> None:
    """A photo, a voice note, a document…: for the salon's admins (bot.dialog.questions)."""
    kind = media_kind(message)
    media = Media(kind, message.caption or "") if kind else None
    await send_replies(bot, message.chat.id, await dialog.unknown(session, media=media))


def media_kind(message: Message) -> str | None:
    if message.photo:
        return "photo"
    if message.voice or message.audio or message.video_note:
        return "voice"
    if message.video or message.animation:
        return "video"
    if message.document:
        return "document"
    if message.sticker:
        return "sticker"
    return None


def get_router() -> Router:
    router = Router(name="fallback")
    router.message.register(text_handler, HasText())
    router.message.register(anything_handler)
    router.callback_query.register(button_handler, ButtonData())
    return router
