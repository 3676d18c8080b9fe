"""The Telegram bot inside the web process: polling as a task, or webhook updates on
POST /webhook/telegram/{secret}. Off (app[TELEGRAM] is None) without a token; core.parts has
already said why in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from bot.companies import CompanyCache
from bot.dialog import Dialog
from bot.notifier import RoutingNotifier
from bot.telegram.dispatcher import (
    TelegramBot,
    build_bot,
    build_dispatcher,
    build_i18n,
    build_storage,
    set_commands,
    webhook_token,
)
from bot.telegram.notifier import TelegramNotifier
from core.parts import parts
from web.edge import BodyRefused, ascii_header, read_json, refused_response
from web.keys import NOTIFIER, SETTINGS, TELEGRAM

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook/telegram/{secret}"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
# Telegram's updates are a few kilobytes; a file is sent as an id, never inline.
MAX_BODY = 1024 * 1024
# Long-poll wait per getUpdates; shutdown cancels the one in flight, so it costs nothing.
POLLING_TIMEOUT = 25


def _telegram_on(app: web.Application) -> bool:
    return any(p.name == "telegram" and p.enabled for p in parts(app[SETTINGS]))


async def telegram_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the ORM; list it before the inbox worker, whose notices it then delivers."""
    app[TELEGRAM] = None
    if not _telegram_on(app):
        yield
        return
    settings = app[SETTINGS]
    bot = build_bot(settings)
    storage = build_storage(settings)
    i18n = build_i18n()
    companies = CompanyCache()
    notifier = RoutingNotifier(
        {"telegram": TelegramNotifier(bot)}, fallback=app[NOTIFIER], companies=companies
    )
    app[NOTIFIER] = notifier
    dialog = Dialog(notifier, companies)
    dp = build_dispatcher(dialog, storage=storage, i18n=i18n)
    app[TELEGRAM] = TelegramBot(bot, dp, dialog, webhook_token(settings))
    try:
        await set_commands(bot, i18n)
    except Exception as exc:
        # Telegram unreachable at start-up: the bot still answers once it is back.
        log.warning("telegram: could not set the command menu: %s", exc)
    polling: asyncio.Task[None] | None = None
    if settings.telegram_mode == "polling":
        polling = asyncio.create_task(_poll(dp, bot), name="telegram-polling")
    else:
        await _set_webhook(app, bot, dp)
    yield
    # The inbox worker (listed after this context) has stopped by now: nothing notifies.
    if polling is not None:
        await _stop_polling(dp, polling)
    await dp.storage.close()
    await bot.session.close()


async def _poll(dp: Dispatcher, bot: Bot) -> None:
    try:
        # A webhook left behind would make getUpdates fail with 409.
        await bot.delete_webhook(drop_pending_updates=False)
    except Exception as exc:
        log.warning("telegram: deleteWebhook failed (%s); polling anyway", exc)
    try:
        log.info("telegram: polling %s", bot.session.api.base.split("/bot", 1)[0])
        await dp.start_polling(
            bot, handle_signals=False, close_bot_session=False, polling_timeout=POLLING_TIMEOUT
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        # A wrong token (getMe 401) ends polling; the process and its other parts stay up.
        log.exception("telegram: polling stopped")


async def _stop_polling(dp: Dispatcher, task: asyncio.Task[None]) -> None:
    if not task.done():
        with contextlib.suppress(RuntimeError, TimeoutError):
            # RuntimeError: polling never got as far as starting.
            await asyncio.wait_for(dp.stop_polling(), timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _set_webhook(app: web.Application, bot: Bot, dp: Dispatcher) -> None:
    settings = app[SETTINGS]
    assert settings.telegram_webhook_secret is not None
    secret = settings.telegram_webhook_secret.get_secret_value()
    url = settings.base_url + WEBHOOK_PATH.format(secret=secret)
    try:
        await bot.set_webhook(
            url,
            secret_token=webhook_token(settings),
            allowed_updates=dp.resolve_used_update_types(),
        )
        log.info("telegram: webhook set to %s/webhook/telegram/…", settings.base_url)
    except Exception as exc:
        log.error("telegram: setWebhook failed: %s (updates will not arrive)", exc)


async def telegram_webhook_handler(request: web.Request) -> web.Response:
    """One update from Telegram, handled before the answer: Telegram then sends the next, and
    a graceful shutdown lets the update in hand finish."""
    running = request.app.get(TELEGRAM)
    settings = request.app[SETTINGS]
    secret = settings.telegram_webhook_secret
    if running is None or secret is None or settings.telegram_mode != "webhook":
        raise web.HTTPNotFound()
    path_secret = request.match_info["secret"]
    if not path_secret.isascii() or not hmac.compare_digest(
        path_secret.encode(), secret.get_secret_value().encode()
    ):
        raise web.HTTPNotFound()
    header = ascii_header(request, SECRET_HEADER)
    if not hmac.compare_digest(header.encode(), running.webhook_token.encode()):
        raise web.HTTPForbidden()
    try:
        data = await read_json(request, MAX_BODY)
    except BodyRefused as refused:
        return refused_response(refused, {"ok": False, "error": refused.reason})
    try:
        update = Update.model_validate(data, context={"bot": running.bot})
    except ValidationError:
        return web.json_response({"ok": False, "error": "not a Telegram update"}, status=400)
    try:
        await running.dp.feed_update(running.bot, update)
    except Exception:
        # Logged by the dispatcher; answering 200 keeps Telegram from resending it forever.
        log.exception("telegram: update %s failed", update.update_id)
    return web.json_response({"ok": True})


def setup_routes(app: web.Application) -> None:
    app.router.add_post(WEBHOOK_PATH, telegram_webhook_handler)
