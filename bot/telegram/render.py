"""Dialog replies as Bot API messages: inline keyboards for choices, a reply keyboard for the
menu, Telegram's contact button to ask for the phone, a photo for an image."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.dialog import Reply

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | None


def inline_markup(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=b.text, url=b.url)
                if b.url
                else InlineKeyboardButton(
                    text=b.text, callback_data=b.action.pack() if b.action else "noop"
                )
                for b in row
            ]
            for row in reply.buttons
        ]
    )


def markup(reply: Reply) -> Markup:
    """One keyboard per message (Telegram's rule): choices first, then the contact button,
    then the menu."""
    inline = inline_markup(reply)
    if inline is not None:
        return inline
    if reply.ask_contact:
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=reply.ask_contact, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if reply.menu:
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=label) for label in row] for row in reply.menu],
            resize_keyboard=True,
            is_persistent=True,
        )
    return None


async def send_replies(
    bot: Bot,
    chat_id: int,
    replies: Sequence[Reply],
    *,
    edit_message_id: int | None = None,
) -> list[int]:
    """Send each reply; one marked `edit` replaces the message `edit_message_id` (the one whose
    button was pressed) when there is one. Returns the ids of the messages sent."""
    sent: list[int] = []
    for reply in replies:
        if reply.edit and edit_message_id is not None and reply.image is None:
            try:
                await bot.edit_message_text(
                    chat_id=chat_id,
                    message_id=edit_message_id,
                    text=reply.text,
                    reply_markup=inline_markup(reply),
                )
                continue
            except TelegramBadRequest as exc:
                if "not modified" in str(exc):
                    continue
                # Too old to edit, or a photo: say it in a new message instead.
        if reply.image is not None:
            message = await bot.send_photo(
                chat_id=chat_id,
                photo=BufferedInputFile(reply.image.png, filename=reply.image.filename),
                caption=reply.text,
                reply_markup=markup(reply),
            )
        else:
            message = await bot.send_message(
                chat_id=chat_id, text=reply.text, reply_markup=markup(reply)
            )
        sent.append(message.message_id)
    return sent


async def answer_quietly(bot: Bot, callback_query_id: str) -> None:
    """Stop the button's spinner; an expired query (a slow tap) is no reason to fail."""
    with contextlib.suppress(TelegramBadRequest):
        await bot.answer_callback_query(callback_query_id)
