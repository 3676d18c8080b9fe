"""A pressed inline button, whichever router took it (its ButtonData filter parsed the
`action`): stop the spinner, act, answer in place."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import CallbackQuery

from bot.dialog import Action, Dialog, Session
from bot.telegram.render import answer_quietly, send_replies


async def button_handler(
    callback: CallbackQuery, action: Action | None, session: Session, dialog: Dialog, bot: Bot
) -> None:
    await answer_quietly(bot, callback.id)
    message = callback.message
    chat_id = message.chat.id if message is not None else callback.from_user.id
    replies = await dialog.action(session, action)
    await send_replies(
        bot,
        chat_id,
        replies,
        edit_message_id=message.message_id if message is not None else None,
    )
