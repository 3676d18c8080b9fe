"""Filters as coroutines. aiogram runs a plain callable filter (a magic `F.…` one included) in
a worker thread on every check; these stay on the event loop, which matters at hundreds of
updates a second."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.dialog import actions
from bot.dialog.actions import Action
from bot.dialog.menu import intent_for


class HasText(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.text is not None


class HasContact(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.contact is not None


class ButtonData(Filter):
    """A pressed button whose data parses as one of `kinds` (bot.dialog.actions; any data at
    all without kinds, the action then None when it does not parse); the handler gets the
    parsed `action`, as aiogram's CallbackData filter hands over its object."""

    def __init__(self, *kinds: type[Action]) -> None:
        self.kinds = kinds

    async def __call__(self, callback: CallbackQuery) -> bool | dict[str, Any]:
        action = actions.parse(callback.data)
        if self.kinds and not isinstance(action, self.kinds):
            return False
        return {"action": action}


class MenuLabel(Filter):
    """A menu label in any language; the handler gets its `intent`."""

    async def __call__(self, message: Message) -> bool | dict[str, Any]:
        intent = intent_for(message.text or "") if message.text else None
        return {"intent": intent} if intent is not None else False


class RepliesToBot(Filter):
    """A text message written as a reply to one of the bot's own messages (an admin answering
    a client's question, bot.dialog.questions); the handler gets `replied_id`."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        replied = message.reply_to_message
        if message.text is None or replied is None:
            return False
        author = replied.from_user
        if author is None or not author.is_bot or author.id != bot.id:
            return False
        return {"replied_id": replied.message_id}
