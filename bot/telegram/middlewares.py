"""Per-update concerns: the dialog Session around each handler, and its language for aiogram's
I18n (the client's stored language, else Telegram's language_code, else ru)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.fsm.context import FSMContext
from aiogram.types import Chat, TelegramObject, Update, User
from aiogram.utils.i18n import I18nMiddleware

from bot.dialog import TELEGRAM, Dialog, Session
from core.i18n import pick_locale

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class SessionMiddleware(BaseMiddleware):
    """Builds the person's Session from the update and the FSM storage, lets the dialog load
    the salon and the client, and stores the flow state back when the turn changed it."""

    def __init__(self, dialog: Dialog) -> None:
        self.dialog = dialog

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is None or user.is_bot or (chat is not None and chat.type != "private"):
            # The bot talks to people one to one; groups and channels get nothing.
            return None
        state: FSMContext = data["state"]
        session = Session(
            TELEGRAM,
            identity={"telegram_user_id": user.id},
            name=user.first_name or "",
            language_hint=user.language_code,
            state=await state.get_state(),
            data=await state.get_data(),
            message_ref=message_ref(data["bot"], event) if isinstance(event, Update) else None,
        )
        # Writing again clears a "blocked the bot" mark (core.clients.remember_channel).
        await self.dialog.prepare(session)
        data["session"] = session
        result = await handler(event, data)
        if session.changed:
            await state.set_state(session.state)
            await state.set_data(session.data)
        return result


def message_ref(bot: Bot, update: Update) -> str | None:
    """What stays the same when Telegram delivers this update again (its answer was lost, or
    polling restarted before confirming it): the chat and the message; for a button press, the
    message the button is on and the button's data, so that pressing it twice is one press."""
    if update.message is not None:
        return f"tg:{bot.id}:{update.message.chat.id}:{update.message.message_id}"
    press = update.callback_query
    if press is not None:
        if press.message is not None:
            where = f"{press.message.chat.id}:{press.message.message_id}"
            return f"tg:{bot.id}:{where}:{press.data or ''}"
        # A button on an inline-mode message: the press itself, which a redelivery keeps.
        return f"tg:{bot.id}:press:{press.id}"
    return None


class SessionI18nMiddleware(I18nMiddleware):
    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        session: Session | None = data.get("session")
        if session is not None:
            return session.locale
        user: User | None = data.get("event_from_user")
        return pick_locale(user.language_code if user else None)
