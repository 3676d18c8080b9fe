"""The Telegram bot inside the web process: polling as a task, or webhook updates on
POST /webhook/telegram/{secret}. Started by web.channels with the other chat channels; off
(app[TELEGRAM] is None) without a token, and core.parts has already said why in the log.
While the Bot API cannot be reached the bot retries with backoff in the background and
/health says `failing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator

from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from aiogram.utils.backoff import BackoffConfig
from aiogram.utils.i18n import I18n
from aiohttp import web
from pydantic import ValidationError

from bot.dialog import Dialog
from bot.telegram.dispatcher import (
    TelegramBot,
    build_dispatcher,
    build_i18n,
    build_storage,
    set_commands,
    webhook_token,
)
from bot.telegram.salon_bots import SalonBots
from core.backoff import Backoff
from core.health import PartStates
from web.edge import BodyRefused, ascii_header, read_json, refused_response
from web.ingest import WEBHOOK_MAX_BODY
from web.keys import BACKOFF, CLOCK, PART_STATES, SETTINGS, TELEGRAM

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook/telegram/{secret}"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
# Long-poll wait per getUpdates; shutdown cancels the one in flight, so it costs nothing.
POLLING_TIMEOUT = 25


@contextlib.asynccontextmanager
async def dispatching(
    app: web.Application, dialog: Dialog, salon_bots: SalonBots
) -> AsyncIterator[tuple[Dispatcher, I18n]]:
    """The one dispatcher of the shared bot and the salons' own bots, and its FSM storage."""
    i18n = build_i18n()
    dp = build_dispatcher(
        dialog, storage=build_storage(app[SETTINGS]), i18n=i18n, salon_bots=salon_bots
    )
    try:
        yield dp, i18n
    finally:
        await dp.storage.close()


@contextlib.asynccontextmanager
async def running(
    app: web.Application, bot: Bot, dialog: Dialog, dp: Dispatcher, i18n: I18n
) -> AsyncIterator[TelegramBot]:
    """The shared bot answering updates over `bot`'s session (web.channels opens and closes
    it, and the dispatcher)."""
    settings = app[SETTINGS]
    polling = settings.telegram_mode == "polling"
    quiet = _QuietPollingLog()
    if polling:
        bot.session.middleware(_WatchUpdates(app[PART_STATES]))
        logging.getLogger("aiogram.dispatcher").addFilter(quiet)
    # In the background: the app serves (and /health tells) while Telegram is unreachable.
    task = asyncio.create_task(_keep_running(app, bot, dp, i18n), name="telegram")
    try:
        yield TelegramBot(bot, dp, dialog, webhook_token(settings))
    finally:
        # The inbox worker (listed after the channels) has stopped by now: nothing notifies.
        await _stop(dp, task, polling=polling)
        logging.getLogger("aiogram.dispatcher").removeFilter(quiet)


async def _keep_running(app: web.Application, bot: Bot, dp: Dispatcher, i18n: I18n) -> None:
    """Start-up (getMe, the command menu, then deleteWebhook or setWebhook), retried with
    capped, jittered backoff until it succeeds, then polling for the rest of the process.

    Once polling runs, aiogram's own loop backs off while getUpdates fails (with the same
    policy, on its own clock) and `_WatchUpdates` reports it; only start-up stopped for good
    before, since aiogram's polling begins with a getMe it does not retry.
    """
    settings = app[SETTINGS]
    states = app[PART_STATES]
    policy = app[BACKOFF]
    backoff = Backoff(policy, app[CLOCK])
    while True:
        step = "getMe"
        try:
            await bot.me()  # cached from here on, so aiogram's polling does not ask again
            step = "setMyCommands"
            await set_commands_quietly(bot, i18n)
            if settings.telegram_mode == "polling":
                # A webhook left behind would make getUpdates fail with 409.
                step = "deleteWebhook"
                await bot.delete_webhook(drop_pending_updates=False)
                states.ok(PART)
                backoff.reset()
                log.info("telegram: polling %s", bot.session.api.base.split("/bot", 1)[0])
                step = "getUpdates"
                await dp.start_polling(
                    bot,
                    handle_signals=False,
                    close_bot_session=False,
                    polling_timeout=POLLING_TIMEOUT,
                    backoff_config=BackoffConfig(
                        min_delay=policy.first,
                        max_delay=policy.cap,
                        factor=policy.factor,
                        jitter=policy.jitter,
                    ),
                )
                return  # stopped on purpose (shutdown)
            step = "setWebhook"
            await _set_webhook(app, bot, dp)
            states.ok(PART)
            return  # Telegram sends the updates from here on
        except asyncio.CancelledError:
            raise
        except TelegramUnauthorizedError as exc:
            # A token Telegram refuses does not heal by waiting: only a new one and a restart.
            states.failing(PART, REFUSED, _err(exc), retried=False)
            return
        except Exception as exc:
            states.failing(PART, _REASONS.get(step, "the Bot API fails"), f"{step}: {_err(exc)}")
            log.debug("telegram: %s failed", step, exc_info=True)
        await backoff.wait()


PART = "telegram"
REFUSED = "the Bot API refuses TELEGRAM_BOT_TOKEN: get the right one from @BotFather and restart"
_REASONS = {
    "getMe": "cannot reach the Bot API",
    "deleteWebhook": "cannot clear the old webhook before polling",
    "getUpdates": "polling stopped",
    "setWebhook": "cannot register the webhook, so no updates arrive",
}


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def set_commands_quietly(bot: Bot, i18n: I18n) -> None:
    """The command menu is a convenience: a Bot API that refuses it (but answered getMe) must
    not keep the bot from answering."""
    try:
        await set_commands(bot, i18n)
    except (TelegramNetworkError, TelegramServerError):
        raise
    except TelegramAPIError as exc:
        log.warning("telegram: could not set the command menu: %s", exc)


class _WatchUpdates(BaseRequestMiddleware):
    """Tells PartStates whether getUpdates works while aiogram's polling loop retries it."""

    def __init__(self, states: PartStates) -> None:
        self.states = states

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        # A flag, not a narrowing isinstance: make_request wants the generic method type.
        polls = isinstance(method, GetUpdates)
        if not polls:
            return await make_request(bot, method)
        try:
            response = await make_request(bot, method)
        except Exception as exc:
            self.states.failing(PART, "cannot fetch updates", f"getUpdates: {_err(exc)}")
            raise
        self.states.ok(PART)
        return response


class _QuietPollingLog(logging.Filter):
    """aiogram logs every failed getUpdates and every sleep (and the reconnect); PartStates
    says it once each way instead."""

    PREFIXES = ("Failed to fetch updates", "Sleep for ", "Connection established")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.PREFIXES))


async def _stop(dp: Dispatcher, task: asyncio.Task[None], *, polling: bool) -> None:
    if polling and not task.done():
        with contextlib.suppress(RuntimeError, TimeoutError):
            # RuntimeError: polling never got as far as starting.
            await asyncio.wait_for(dp.stop_polling(), timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _set_webhook(app: web.Application, bot: Bot, dp: Dispatcher) -> None:
    settings = app[SETTINGS]
    if settings.telegram_webhook_secret is None:
        raise RuntimeError("a webhook without TELEGRAM_WEBHOOK_SECRET")
    secret = settings.telegram_webhook_secret.get_secret_value()
    url = settings.base_url + WEBHOOK_PATH.format(secret=secret)
    await bot.set_webhook(
        url,
        secret_token=webhook_token(settings),
        allowed_updates=dp.resolve_used_update_types(),
    )
    log.info("telegram: webhook set to %s/webhook/telegram/…", settings.base_url)


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
    return await feed_webhook(request, running.dp, running.bot, running.webhook_token)


async def feed_webhook(request: web.Request, dp: Dispatcher, bot: Bot, secret: str) -> web.Response:
    """One webhook update for `bot`, once its own secret header matches (constant time): the
    shared bot's route and every salon bot's (web.salon_bots) take the same steps."""
    header = ascii_header(request, SECRET_HEADER)
    if not hmac.compare_digest(header.encode(), secret.encode()):
        raise web.HTTPForbidden()
    try:
        data = await read_json(request, WEBHOOK_MAX_BODY)
    except BodyRefused as refused:
        return refused_response(refused, {"ok": False, "error": refused.reason})
    try:
        update = Update.model_validate(data, context={"bot": bot})
    except ValidationError:
        return web.json_response({"ok": False, "error": "not a Telegram update"}, status=400)
    try:
        await dp.feed_update(bot, update)
    except Exception:
        # Logged by the dispatcher; answering 200 keeps Telegram from resending it forever.
        log.exception("telegram: update %s of bot %s failed", update.update_id, bot.id)
    return web.json_response({"ok": True})


def setup_routes(app: web.Application) -> None:
    app.router.add_post(WEBHOOK_PATH, telegram_webhook_handler)
