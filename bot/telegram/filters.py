"""Filters as coroutines. aiogram runs a plain callable filter (a magic `F.…` one included) in
a worker thread on every check; these stay on the event loop, which matters at hundreds of
updates a second."""

from __future__ import annotations

import re
from typing import Any

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.dialog.menu import intent_for


class HasText(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.text is not None


class HasContact(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.contact is not None


class ButtonData(Filter):
    """A pressed button whose data matches `pattern` (from its start to its end)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    async def __call__(self, callback: CallbackQuery) -> bool:
        return self.pattern.fullmatch(callback.data or "") is not None


class MenuLabel(Filter):
    """A menu label in any language; the handler gets its `intent`."""

    async def __call__(self, message: Message) -> bool | dict[str, Any]:
        intent = intent_for(message.text or "") if message.text else None
        return {"intent": intent} if intent is not None else False
