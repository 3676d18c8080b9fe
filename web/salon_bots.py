"""The salons' own Telegram bots in the web process, next to the shared bot, on one dispatcher.

Each salon bot polls in `TELEGRAM_MODE=polling`; in webhook mode it registers
`PUBLIC_BASE_URL/webhook/telegram/bot/<key>` (an opaque per-salon key, never the token) with a
secret header of its own (core.salon_bot.webhook_secret), and that one route serves them all.
Every minute (on SALON_BOTS_CLOCK) the registry is brought in line with the database, so a bot
set, replaced or removed by `salonbot company set` or the owner's page starts or stops without
a restart; a webhook for a key this replica does not know yet looks in the database first.
A token Telegram refuses (401: revoked, or replaced in @BotFather) switches that salon's bot
off (core.salon_bot.switch_off_refused) and its admins are told through bot.outbound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.utils.i18n import I18n
from aiohttp import web

from bot.alerts import salon_bot_refused_text
from bot.dialog.replies import Reply
from bot.telegram.salon_bots import SalonBot, SalonBots
from core import salon_bot
from core.backoff import Backoff
from core.i18n import pick_locale
from core.models import Company
from web.keys import BACKOFF, OUTBOUND, SALON_BOTS, SALON_BOTS_CLOCK, SETTINGS
from web.telegram import POLLING_TIMEOUT, feed_webhook, set_commands_quietly

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook/telegram/bot/{key}"
# How soon a bot set or removed in the database starts or stops here.
RECONCILE_EVERY = 60.0
STARTING_AT_ONCE = 8


class SalonBotRunner:
    def __init__(
        self,
        app: web.Application,
        registry: SalonBots,
        dp: Dispatcher,
        i18n: I18n,
        shared: Bot | None,
    ) -> None:
        self.app = app
        self.registry = registry
        self.dp = dp
        self.i18n = i18n
        self.settings = app[SETTINGS]
        self.clock = app[SALON_BOTS_CLOCK]
        # The salon's admins hear of a refused token on their channels (through the shared bot
        # in Telegram: staff talk to it).
        self.outbound = app[OUTBOUND]
        self.tasks: dict[SalonBot, asyncio.Task[None]] = {}
        self._reconciling = asyncio.Lock()
        # Start-ups at once (getMe, the menu, the webhook): thousands of salon bots starting
        # with the process must not all call Telegram in the same moment.
        self._starting = asyncio.Semaphore(STARTING_AT_ONCE)
        registry.on_refused = self.switch_off

    @property
    def polling(self) -> bool:
        return self.settings.telegram_mode == "polling"

    async def reconcile(self) -> None:
        """Start the bots the database has and this process does not; stop the others."""
        async with self._reconciling:
            started, stopped = await self.registry.load()
            for found in stopped:
                await self._stop(found)
                log.info("salon bot of company %s stopped", found.company_id)
            for found in started:
                self.tasks[found] = asyncio.create_task(
                    self._run(found), name=f"salon-bot-{found.company_id}"
                )
                log.info("salon bot of company %s started", found.company_id)
            self._reap()

    async def _run(self, found: SalonBot) -> None:
        """Start-up (getMe, the command menu, then deleteWebhook and polling, or setWebhook),
        retried with backoff on the app's clock until Telegram answers; a refused token
        switches the bot off."""
        backoff = Backoff(self.app[BACKOFF], self.clock)
        while True:
            try:
                async with self._starting:
                    await self._start(found)
                if self.polling:
                    await self._poll(found, backoff)
                return
            except asyncio.CancelledError:
                raise
            except TelegramUnauthorizedError:
                await self.switch_off(found)
                return
            except Exception as exc:
                log.warning(
                    "salon bot of company %s: %s; retrying with backoff",
                    found.company_id,
                    type(exc).__name__,
                )
            await backoff.wait()

    async def _start(self, found: SalonBot) -> None:
        await found.bot.me()
        await set_commands_quietly(found.bot, self.i18n)
        if self.polling:
            # A webhook left behind would make getUpdates fail with 409.
            await found.bot.delete_webhook(drop_pending_updates=False)
            return
        await found.bot.set_webhook(
            self.settings.base_url + WEBHOOK_PATH.format(key=found.key),
            secret_token=found.secret,
            allowed_updates=self.dp.resolve_used_update_types(),
        )

    async def _poll(self, found: SalonBot, backoff: Backoff) -> None:
        """getUpdates until cancelled; each update goes through the one dispatcher with this
        bot, so the session middleware binds it to the salon."""
        offset: int | None = None
        allowed = self.dp.resolve_used_update_types()
        while True:
            updates = await found.bot.get_updates(
                offset=offset, timeout=POLLING_TIMEOUT, allowed_updates=allowed
            )
            backoff.reset()
            for update in updates:
                offset = update.update_id + 1
                try:
                    await self.dp.feed_update(found.bot, update)
                except Exception:
                    log.exception("salon bot of company %s: update failed", found.company_id)

    async def switch_off(self, found: SalonBot) -> None:
        """Telegram refused the bot's token: off in the database (unless the salon has a new
        token by now), off here, and the salon's admins are told once."""
        self.registry.forget(found)
        task = self.tasks.get(found)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        company = await salon_bot.switch_off_refused(
            found.company_id, found.token, now=self.clock.now()
        )
        if company is None:
            return
        log.warning("salon bot of company %s: Telegram refuses its token; off", company.id)
        await self._tell_admins(company, found.username)

    async def _tell_admins(self, company: Company, username: str | None) -> None:
        salon = company.title or str(company.yclients_id)
        bot = f"@{username}" if username else ""

        def compose(locale: str) -> list[Reply]:
            return [Reply(salon_bot_refused_text(pick_locale(locale), salon=salon, bot=bot))]

        try:
            reached = await self.outbound.to_admins(company.id, compose)
        except Exception:
            log.exception("salon bot of company %s: telling the admins failed", company.id)
            return
        log.info("salon bot of company %s: %d admin(s) told it is off", company.id, reached)

    async def _stop(self, found: SalonBot) -> None:
        task = self.tasks.pop(found, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _reap(self) -> None:
        """Forget the tasks of bots switched off since (they have ended)."""
        for found, task in list(self.tasks.items()):
            if task.done() and self.registry.of_company(found.company_id) is not found:
                del self.tasks[found]

    async def known(self, key: str) -> SalonBot | None:
        """The bot of this webhook key; a key this replica has not loaded yet (set a moment
        ago, elsewhere) is looked up in the database, which is one indexed read."""
        found = self.registry.by_key(key)
        if found is None and await Company.exists(telegram_bot_key=key):
            await self.reconcile()
            found = self.registry.by_key(key)
        return found

    async def close(self) -> None:
        # The registry and its HTTP session belong to web.channels.open_channels.
        for found in list(self.tasks):
            await self._stop(found)


async def _keep_reconciling(runner: SalonBotRunner) -> None:
    while True:
        try:
            await runner.reconcile()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database may be away for a moment: the next round tries again.
            log.exception("salon bots: reconciling with the database failed")
        await runner.clock.sleep(RECONCILE_EVERY)


@contextlib.asynccontextmanager
async def running(
    app: web.Application, registry: SalonBots, dp: Dispatcher, i18n: I18n, shared: Bot | None
) -> AsyncIterator[SalonBotRunner]:
    runner = SalonBotRunner(app, registry, dp, i18n, shared)
    task = asyncio.create_task(_keep_reconciling(runner), name="salon-bots")
    try:
        yield runner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.close()


async def salon_bot_webhook_handler(request: web.Request) -> web.Response:
    """One update for a salon's own bot: the key finds the bot (404 when no bot has it), the
    bot's own secret header must match (403), then the one dispatcher handles it."""
    runner = request.app.get(SALON_BOTS)
    if runner is None or not request.app[SETTINGS].telegram_mode == "webhook":
        raise web.HTTPNotFound()
    key = request.match_info["key"]
    found = await runner.known(key) if key.isascii() and len(key) <= 64 else None
    if found is None:
        raise web.HTTPNotFound()
    return await feed_webhook(request, runner.dp, found.bot, found.secret)


def setup_routes(app: web.Application) -> None:
    app.router.add_post(WEBHOOK_PATH, salon_bot_webhook_handler)
