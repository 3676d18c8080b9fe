"""The chat channels, built once: the Telegram bot, the WhatsApp channel, and the router that
sends each balance notice to the channel its client used last (bot.notifier).

`open_channels` is the one factory of what delivers notices. The web process runs the bots on
top of it (`channels_ctx`, which sets NOTIFIER, TELEGRAM and WHATSAPP_BOT once; nothing
replaces or edits them afterwards), and `salonbot sync` opens it to tell clients about the
bonuses it awarded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiogram import Bot
from aiohttp import web
from prometheus_client import Counter

from bot.companies import CompanyCache
from bot.dialog import TELEGRAM as TELEGRAM_CHANNEL
from bot.dialog import WHATSAPP as WHATSAPP_CHANNEL
from bot.dialog import Dialog
from bot.notifier import ChannelNotifier, RoutingNotifier
from bot.telegram.dispatcher import build_bot
from bot.telegram.notifier import TelegramNotifier
from bot.whatsapp.notifier import WhatsAppNotifier
from bot.whatsapp.outbox import Manners, Outbox, ResultHook
from core.notifications import LoggingNotifier, Notifier
from core.parts import parts
from core.settings import Settings
from core.whatsapp import GatewayNotConfigured, WahaGateway, WhatsAppGateway
from web import telegram, whatsapp_channel
from web.keys import (
    METRICS,
    NOTICE_FALLBACK,
    NOTIFIER,
    SETTINGS,
    TELEGRAM,
    WHATSAPP,
    WHATSAPP_BOT,
)
from web.marketplace import owner_link

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Channels:
    """What reaches clients: `notifier` routes balance notices over the channels that are on."""

    notifier: Notifier
    companies: CompanyCache
    # The Telegram bot's session; None while the part is off (core.parts says why).
    bot: Bot | None
    # Sends over each salon's WhatsApp number; None while the gateway is not configured.
    outbox: Outbox | None


def telegram_on(settings: Settings) -> bool:
    return any(p.name == "telegram" and p.enabled for p in parts(settings))


@contextlib.asynccontextmanager
async def open_channels(
    settings: Settings,
    gateway: WhatsAppGateway | None,
    *,
    fallback: Notifier | None = None,
    on_sent: ResultHook | None = None,
) -> AsyncIterator[Channels]:
    """The channels the settings switch on. A client no channel that is on reaches (one only
    seen in YClients) is told through `fallback` (a log line by default). On leaving, WhatsApp
    sends already handed over get the Outbox's grace, then the bot's session closes."""
    bot = build_bot(settings) if telegram_on(settings) else None
    outbox = None
    if gateway is not None:
        manners = Manners(pause=settings.whatsapp_reply_pause, rate=settings.whatsapp_send_rate)
        outbox = Outbox(gateway, manners, on_result=on_sent)
    routes: dict[str, ChannelNotifier] = {}
    if bot is not None:
        routes[TELEGRAM_CHANNEL.name] = TelegramNotifier(bot)
    if outbox is not None:
        routes[WHATSAPP_CHANNEL.name] = WhatsAppNotifier(outbox)
    companies = CompanyCache()
    fallback = fallback or LoggingNotifier()
    notifier = RoutingNotifier(routes, fallback, companies) if routes else fallback
    try:
        yield Channels(notifier, companies, bot, outbox)
    finally:
        if outbox is not None:
            await outbox.close()
        if bot is not None:
            await bot.session.close()


def gateway_from_settings(settings: Settings) -> WahaGateway | None:
    """The WhatsApp gateway, or None while WHATSAPP_* is incomplete (start-up's announcement of
    the parts, or `salonbot check`, says which variable is missing)."""
    try:
        return WahaGateway.from_settings(settings)
    except GatewayNotConfigured as exc:
        log.debug("WhatsApp gateway off: %s", exc)
        return None


@contextlib.asynccontextmanager
async def standalone_channels(settings: Settings) -> AsyncIterator[Channels]:
    """The channels for a command outside the web process (`salonbot sync`), with a gateway
    of their own."""
    gateway = gateway_from_settings(settings)
    try:
        async with open_channels(settings, gateway) as channels:
            yield channels
    finally:
        if gateway is not None:
            await gateway.aclose()


async def channels_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the ORM, PART_STATES (the bots report into it) and the gateway (whatsapp_ctx);
    list it before the inbox worker, whose notices it delivers: teardown runs in reverse, so
    the worker has stopped before the channels close."""
    on_sent = None
    if app[WHATSAPP] is not None:
        sent = Counter(
            "salonbot_whatsapp_messages_total",
            "WhatsApp messages handed to the gateway, by kind (reply, notice) and outcome",
            ["kind", "outcome"],
            registry=app[METRICS].registry,
        )

        def on_sent(kind: str, ok: bool) -> None:
            sent.labels(kind, "sent" if ok else "failed").inc()

    channels = open_channels(
        app[SETTINGS], app[WHATSAPP], fallback=app[NOTICE_FALLBACK], on_sent=on_sent
    )
    async with channels as opened, contextlib.AsyncExitStack() as running:
        app[NOTIFIER] = opened.notifier
        settings = app[SETTINGS]
        dialog = Dialog(
            opened.notifier,
            opened.companies,
            owner_link=lambda company: owner_link(settings, company),
        )
        app[TELEGRAM] = (
            None
            if opened.bot is None
            else await running.enter_async_context(telegram.running(app, opened.bot, dialog))
        )
        app[WHATSAPP_BOT] = (
            None
            if opened.outbox is None
            else await running.enter_async_context(
                whatsapp_channel.running(app, opened.outbox, dialog)
            )
        )
        yield
