"""The client's menu: reply-keyboard labels, their commands, and the client's buttons."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.dialog import Dialog, Intent, Session, actions
from bot.dialog.menu import COMMANDS, STAFF_INTENTS
from bot.telegram.filters import ButtonData, MenuLabel
from bot.telegram.handlers.buttons import button_handler
from bot.telegram.render import send_replies

CLIENT_COMMANDS = tuple(name for name, intent in COMMANDS.items() if intent not in STAFF_INTENTS)


async def menu_handler(
    message: Message, intent: Intent, session: Session, dialog: Dialog, bot: Bot
) -> None:
    replies = await dialog.intent(session, intent)
    await send_replies(bot, message.chat.id, replies)


async def command_handler(
    message: Message, command: CommandObject, session: Session, dialog: Dialog, bot: Bot
) -> None:
    replies = await dialog.intent(session, COMMANDS[command.command], command.args or "")
    await send_replies(bot, message.chat.id, replies)


def get_router() -> Router:
    router = Router(name="client")
    router.message.register(command_handler, Command(*CLIENT_COMMANDS))
    router.message.register(menu_handler, MenuLabel())
    router.callback_query.register(
        button_handler,
        ButtonData(
            actions.Book,
            actions.Balance,
            actions.Visits,
            actions.MyCode,
            actions.Help,
            actions.Language,
            actions.History,
            actions.PickSalon,
        ),
    )
    return router
