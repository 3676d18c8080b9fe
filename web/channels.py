"""The chat channels, built once: the Telegram bot, the WhatsApp channel, the MAX bot, the
`Outbound` over them (bot.outbound: every message nobody just asked for, to the channel the
person used last, with a fallback), and the balance-notice router on top of it (bot.notifier).

`open_channels` is the one factory of what delivers messages. The web process runs the bots on
top of it (`channels_ctx`, which sets NOTIFIER, OUTBOUND, TELEGRAM, WHATSAPP_BOT and MAX_BOT
once; nothing replaces or edits them afterwards), and `salonbot sync` opens it to tell clients
about the bonuses it awarded.
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
from bot.dialog import Dialog
from bot.max.delivery import MaxChannel
from bot.notifier import RoutingNotifier
from bot.outbound import Outbound
from bot.telegram.delivery import TelegramChannel
from bot.telegram.dispatcher import build_bot
from bot.whatsapp.delivery import WhatsAppChannel
from bot.whatsapp.outbox import Manners, Outbox, ResultHook
from core.backoff import Clock
from core.max import MaxClient
from core.notifications import LoggingNotifier, Notifier
from core.parts import parts
from core.settings import Settings
from core.whatsapp import GatewayNotConfigured, WahaGateway, WhatsAppGateway
from web import max as max_channel
from web import telegram, whatsapp_channel
from web.keys import (
    CLOCK,
    MAX_BOT,
    METRICS,
    NOTICE_FALLBACK,
    NOTIFIER,
    OUTBOUND,
    SETTINGS,
    TELEGRAM,
    WHATSAPP,
    WHATSAPP_BOT,
    YCLIENTS,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Channels:
    """What reaches clients: `notifier` routes balance notices over the channels that are on."""

    notifier: Notifier
    # Every message nobody just asked for (notices, reminders, admin alerts and answers).
    outbound: Outbound
    companies: CompanyCache
    # The Telegram bot's session; None while the part is off (core.parts says why).
    bot: Bot | None
    # Sends over each salon's WhatsApp number; None while the gateway is not configured.
    outbox: Outbox | None
    # The MAX Bot API client; None while MAX_BOT_TOKEN is unset.
    max: MaxClient | None = None


def telegram_on(settings: Settings) -> bool:
    return any(p.name == "telegram" and p.enabled for p in parts(settings))


@contextlib.asynccontextmanager
async def open_channels(
    settings: Settings,
    gateway: WhatsAppGateway | None,
    *,
    fallback: Notifier | None = None,
    on_sent: ResultHook | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[Channels]:
    """The channels the settings switch on. A client no channel that is on reaches (one only
    seen in YClients) is told through `fallback` (a log line by default). On leaving, WhatsApp
    sends already handed over get the Outbox's grace, then the bot's session closes."""
    bot = build_bot(settings) if telegram_on(settings) else None
    outbox = None
    if gateway is not None:
        manners = Manners(pause=settings.whatsapp_reply_pause, rate=settings.whatsapp_send_rate)
        outbox = Outbox(gateway, manners, on_result=on_sent)
    max_client = MaxClient.from_settings(settings, clock=clock)
    # In this order when a person has never written (staff, a client only seen in YClients):
    # Telegram first, it costs the salon's own number nothing.
    outbound = Outbound()
    if bot is not None:
        outbound.add(TelegramChannel(bot))
    if outbox is not None:
        outbound.add(WhatsAppChannel(outbox))
    if max_client is not None:
        outbound.add(MaxChannel(max_client))
    companies = CompanyCache()
    fallback = fallback or LoggingNotifier()
    notifier = RoutingNotifier(outbound, fallback, companies) if outbound.channels else fallback
    try:
        yield Channels(notifier, outbound, companies, bot, outbox, max_client)
    finally:
        if max_client is not None:
            await max_client.aclose()
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
        app[SETTINGS],
        app[WHATSAPP],
        fallback=app[NOTICE_FALLBACK],
        on_sent=on_sent,
        clock=app[CLOCK],
    )
    async with channels as opened, contextlib.AsyncExitStack() as running:
        app[NOTIFIER] = opened.notifier
        app[OUTBOUND] = opened.outbound
        # A reminder's answer confirms or cancels the record in YClients and tells the admins.
        dialog = Dialog(
            opened.notifier,
            opened.companies,
            clock=lambda: app[CLOCK].now().timestamp(),
            outbound=opened.outbound,
            yclients=app[YCLIENTS],
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
        app[MAX_BOT] = (
            None
            if opened.max is None
            else await running.enter_async_context(max_channel.running(app, opened.max, dialog))
        )
        yield
