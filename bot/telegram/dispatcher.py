"""The Telegram bot, assembled: one visible, ordered list of routers, and the Bot and the FSM
storage from settings. Nothing is created at import."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageText,
    GetMe,
    GetUpdates,
    Response,
    SendMessage,
    SendPhoto,
    SetMyCommands,
    SetWebhook,
    TelegramMethod,
)
from aiogram.types import BotCommand, ErrorEvent, Update
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from bot.dialog import Dialog
from bot.telegram.handlers import answers, client, contact, fallback, membership, staff, start
from bot.telegram.middlewares import SessionI18nMiddleware, SessionMiddleware
from core.i18n import DEFAULT_LOCALE, DOMAIN, LOCALES, LOCALES_DIR, pick_locale
from core.settings import Settings

log = logging.getLogger(__name__)

# The command menu Telegram shows next to the input field.
BOT_COMMANDS = (
    ("start", __("Start, or choose the salon")),
    ("book", __("Book a visit")),
    ("balance", __("My bonuses")),
    ("visits", __("My visits")),
    ("code", __("My code for the reception")),
    ("language", __("Language")),
    ("reminders", __("Reminders: on or off")),
    ("help", __("What the bot can do")),
)


def build_i18n() -> I18n:
    return I18n(path=LOCALES_DIR, default_locale=DEFAULT_LOCALE, domain=DOMAIN)


# Every Bot API answer is validated as `Response[<the method's result type>]`. pydantic keeps
# those generic classes in a weak cache which the garbage collector empties under load, and a
# rebuild is slow enough to show in the bot's profile (bench/README.md), so the ones this bot
# uses are held for the life of the process.
_USED_METHODS: tuple[type[TelegramMethod[Any]], ...] = (
    SendMessage,
    SendPhoto,
    EditMessageText,
    AnswerCallbackQuery,
    GetUpdates,
    GetMe,
    DeleteWebhook,
    SetWebhook,
    SetMyCommands,
)
_held_response_types: list[type] = []


def hold_response_types() -> None:
    if not _held_response_types:
        _held_response_types.extend(
            Response[method.__returning__]  # type: ignore[name-defined]
            for method in _USED_METHODS
        )


def build_dispatcher(
    dialog: Dialog, *, storage: BaseStorage | None = None, i18n: I18n | None = None
) -> Dispatcher:
    hold_response_types()
    i18n = i18n or build_i18n()
    # Workflow data reaches handlers by parameter name: `dialog`, `i18n`.
    dp = Dispatcher(storage=storage or MemoryStorage(), dialog=dialog, i18n=i18n)
    dp.update.outer_middleware(SessionMiddleware(dialog))
    dp.update.outer_middleware(SessionI18nMiddleware(i18n))
    dp.include_routers(
        membership.get_router(),
        start.get_router(),
        # Before the menu and flows: an admin's answer is sent as typed, whatever it says.
        answers.get_router(),
        contact.get_router(),
        staff.get_router(),
        client.get_router(),
        # Last, on purpose: flow input and whatever nothing above took.
        fallback.get_router(),
    )
    dp.errors.register(error_handler)
    return dp


def build_bot(settings: Settings) -> Bot:
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(settings.telegram_bot_token.get_secret_value(), session=session)


def build_storage(settings: Settings) -> BaseStorage:
    """Redis when REDIS_URL is set (several replicas share the flows), else memory."""
    if settings.redis_url:
        return RedisStorage.from_url(settings.redis_url)
    return MemoryStorage()


async def set_commands(bot: Bot, i18n: I18n) -> None:
    """The command menu in each language (the default one for everyone else)."""
    for locale in (None, *LOCALES):
        with i18n.context(), i18n.use_locale(locale or DEFAULT_LOCALE):
            commands = [BotCommand(command=c, description=str(d)) for c, d in BOT_COMMANDS]
        await bot.set_my_commands(commands, language_code=locale)


async def error_handler(event: ErrorEvent, bot: Bot, i18n: I18n) -> bool:
    """A failed update is logged with its cause; the person is told to try again rather than
    being left without an answer."""
    log.error(
        "update %s failed: %s",
        event.update.update_id,
        event.exception,
        exc_info=event.exception,
    )
    chat_id, language = _where(event.update)
    if chat_id is not None:
        with i18n.context(), i18n.use_locale(pick_locale(language)):
            text = _("Sorry, something went wrong. Please try again.")
        try:
            await bot.send_message(chat_id=chat_id, text=text)
        except TelegramAPIError:
            log.warning("could not tell chat %s about the failure", chat_id)
    return True


def _where(update: Update) -> tuple[int | None, str | None]:
    if update.message is not None:
        user = update.message.from_user
        return update.message.chat.id, user.language_code if user else None
    if update.callback_query is not None:
        user = update.callback_query.from_user
        return user.id, user.language_code
    return None, None


@dataclass(frozen=True, slots=True)
class TelegramBot:
    """The running bot, as the web process holds it."""

    bot: Bot
    dp: Dispatcher
    dialog: Dialog
    # What Telegram must send as X-Telegram-Bot-Api-Secret-Token in webhook mode.
    webhook_token: str


def webhook_token(settings: Settings) -> str:
    """The secret-token header Telegram sends with each webhook update: derived from
    SECRET_KEY and TELEGRAM_WEBHOOK_SECRET, so a leaked URL alone is not enough."""
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    secret = (
        settings.telegram_webhook_secret.get_secret_value()
        if settings.telegram_webhook_secret
        else ""
    )
    return hmac.new(key.encode(), f"telegram-webhook:{secret}".encode(), hashlib.sha256).hexdigest()
