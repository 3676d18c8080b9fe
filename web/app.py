"""The composition root: `create_app(settings)` builds the whole process.

Every resource is a cleanup_ctx generator (startup before `yield`, teardown after) and the
order of the list is the order of startup; teardown runs in reverse.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.telegram.username import BotUsername
from core import bookings, db, inbox
from core.backoff import BackoffPolicy, Clock
from core.health import PartStates
from core.marketplace import MARKETPLACE
from core.notifications import LoggingNotifier
from core.parts import half_configured, parts
from core.settings import Settings
from core.whatsapp import WHATSAPP as WHATSAPP_SOURCE
from core.yclients import YClientsClient
from web import api, health, marketplace, telegram, whatsapp_channel, whatsapp_webhook, yclients
from web import max as max_channel
from web.assets import setup_routes as setup_asset_routes
from web.channels import channels_ctx, gateway_from_settings
from web.cron import sync_cron_ctx, whatsapp_watchdog_ctx
from web.edge import DEFAULT_BODY_TIMEOUT
from web.home import setup_routes as setup_home_routes
from web.inbox_worker import inbox_worker_ctx
from web.keys import (
    BACKOFF,
    BODY_TIMEOUT,
    BOT_USERNAME,
    CLOCK,
    INBOX_HANDLERS,
    INBOX_POLICY,
    INBOX_WAKEUP,
    METRICS,
    NOTICE_FALLBACK,
    ONBOARDING_POLL_MS,
    PART_STATES,
    SETTINGS,
    VISIT_KINDS,
    WHATSAPP,
    YCLIENTS,
    InboxWakeup,
)
from web.metrics import Metrics, metrics_handler, metrics_middleware
from web.server_log import ServerLog
from web.sync_jobs import sync_jobs_ctx
from web.visit_loop import visit_kinds, visit_loop_ctx

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def inbox_handlers(app: web.Application) -> inbox.Handlers:
    """Every source the inbox drains, each registered once (a second one is refused)."""
    handlers = inbox.Handlers()
    bookings.register(handlers)
    handlers.register(MARKETPLACE, marketplace.inbox_handler(app))
    # session.status keeps the salon's link state current, messages go to the channel.
    handlers.register(WHATSAPP_SOURCE, whatsapp_channel.inbox_handler(app))
    return handlers


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    app = web.Application(
        middlewares=[metrics_middleware(metrics)],
        client_max_size=MAX_BODY,
        handler_args={"logger": ServerLog()},
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics

    app[NOTICE_FALLBACK] = LoggingNotifier()
    app[INBOX_WAKEUP] = InboxWakeup()
    app[INBOX_POLICY] = inbox.InboxPolicy()
    app[INBOX_HANDLERS] = inbox_handlers(app)
    app[BOT_USERNAME] = BotUsername(settings)
    app[ONBOARDING_POLL_MS] = 3000
    app[BODY_TIMEOUT] = DEFAULT_BODY_TIMEOUT
    # Tests replace these before start-up to move the channels' time by hand.
    app[CLOCK] = Clock()
    app[BACKOFF] = BackoffPolicy()
    app[VISIT_KINDS] = visit_kinds()

    app.cleanup_ctx.append(orm_ctx)
    app.cleanup_ctx.append(announce_parts_ctx)
    # Before the channels, which report into it.
    app.cleanup_ctx.append(part_states_ctx)
    app.cleanup_ctx.append(yclients_ctx)
    app.cleanup_ctx.append(whatsapp_ctx)
    # Telegram, WhatsApp, MAX and the router of balance notices over them (NOTIFIER), built once.
    app.cleanup_ctx.append(channels_ctx)
    # After the channels: every job below tells clients through NOTIFIER.
    app.cleanup_ctx.append(inbox_worker_ctx)
    app.cleanup_ctx.append(sync_cron_ctx)
    # Syncs asked for over the API; cancelled on shutdown before the clients they use close.
    app.cleanup_ctx.append(sync_jobs_ctx)
    app.cleanup_ctx.append(whatsapp_watchdog_ctx)
    # Reminders, notices and questions, sent over the channels (after channels_ctx).
    app.cleanup_ctx.append(visit_loop_ctx)
    app.cleanup_ctx.append(freeze_gc_ctx)

    health.setup_routes(app)
    api.setup_routes(app)
    yclients.setup_routes(app)
    marketplace.setup_routes(app)
    whatsapp_webhook.setup_routes(app)
    telegram.setup_routes(app)
    max_channel.setup_routes(app)
    app.router.add_get("/metrics", metrics_handler(metrics))
    setup_home_routes(app)
    # The pages' stylesheets and script (web/static/).
    setup_asset_routes(app)
    return app


async def orm_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    await db.init_orm(settings.db_url, pool_size=20)
    yield
    await db.close_orm()


async def yclients_ctx(app: web.Application) -> AsyncIterator[None]:
    client = YClientsClient.from_settings(app[SETTINGS])
    app[YCLIENTS] = client
    yield
    if client is not None:
        await client.aclose()


async def whatsapp_ctx(app: web.Application) -> AsyncIterator[None]:
    # announce_parts_ctx has already said whether the part is off and which variable is missing.
    gateway = gateway_from_settings(app[SETTINGS])
    app[WHATSAPP] = gateway
    yield
    if gateway is not None:
        await gateway.aclose()


async def announce_parts_ctx(app: web.Application) -> AsyncIterator[None]:
    # A part meant to run (its token or address is set) that cannot is a WARNING, not news.
    half = {p.part for p in half_configured(app[SETTINGS])}
    for part in parts(app[SETTINGS]):
        if not part.enabled:
            level = logging.WARNING if part.name in half else logging.INFO
            log.log(level, "%s %s", part.name, part.reason)
    yield


async def part_states_ctx(app: web.Application) -> AsyncIterator[None]:
    app[PART_STATES] = PartStates(now=app[CLOCK].now)
    yield


async def freeze_gc_ctx(app: web.Application) -> AsyncIterator[None]:
    """After start-up, keep the garbage collector off what start-up built (modules, pydantic
    schemas, routers: objects that live as long as the process). Walking them made every full
    collection a long pause that every update in flight waits out (bench/README.md, bot).
    No collection first: it would cost that much again, for little start-up garbage."""
    gc.freeze()
    yield
    gc.unfreeze()
