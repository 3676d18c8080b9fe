"""Staff commands and the redeem confirmation buttons. Who is staff is the dialog's question
(read from the database on every action); to anyone else these answer like unknown text."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.dialog import Dialog, Session, actions
from bot.dialog.menu import COMMANDS, STAFF_INTENTS
from bot.telegram.filters import ButtonData
from bot.telegram.handlers.buttons import button_handler
from bot.telegram.render import send_replies

STAFF_COMMANDS = tuple(name for name, intent in COMMANDS.items() if intent in STAFF_INTENTS)


async def staff_command_handler(
    message: Message, command: CommandObject, session: Session, dialog: Dialog, bot: Bot
) -> None:
    replies = await dialog.intent(session, COMMANDS[command.command], command.args or "")
    await send_replies(bot, message.chat.id, replies)


def get_router() -> Router:
    router = Router(name="staff")
    router.message.register(staff_command_handler, Command(*STAFF_COMMANDS))
    router.callback_query.register(
        button_handler,
        ButtonData(actions.ConfirmRedeem, actions.CancelRedeem, actions.AdjustClient),
    )
    return router
