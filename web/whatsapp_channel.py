"""The WhatsApp channel inside the web process: the Outbox, the channel (bot.whatsapp) and its
notifier plugged into the router of balance notices, and the inbox handler for source
`whatsapp`. Off (app[WHATSAPP_BOT] is None) while the gateway is not configured.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Counter

from bot.dialog import WHATSAPP as CHANNEL
from bot.dialog import Dialog
from bot.notifier import RoutingNotifier
from bot.whatsapp.channel import WhatsAppBot
from bot.whatsapp.notifier import WhatsAppNotifier
from bot.whatsapp.outbox import Manners, Outbox
from core import onboarding
from core.inbox import Handler
from core.ledger import LedgerResult
from core.models import InboxEvent
from web.keys import METRICS, NOTIFIER, SETTINGS, WHATSAPP, WHATSAPP_BOT

log = logging.getLogger(__name__)


async def whatsapp_channel_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the gateway (whatsapp_ctx) and, to share its notice router, the Telegram bot:
    list it after both and before the inbox worker (teardown runs in reverse, so the worker
    stops handing it messages before the Outbox closes)."""
    app[WHATSAPP_BOT] = None
    gateway = app[WHATSAPP]
    if gateway is None:
        yield
        return
    settings = app[SETTINGS]
    sent = Counter(
        "salonbot_whatsapp_messages_total",
        "WhatsApp messages handed to the gateway, by kind (reply, notice) and outcome",
        ["kind", "outcome"],
        registry=app[METRICS].registry,
    )
    outbox = Outbox(
        gateway,
        Manners(pause=settings.whatsapp_reply_pause, rate=settings.whatsapp_send_rate),
        on_result=lambda kind, ok: sent.labels(kind, "sent" if ok else "failed").inc(),
    )
    notifier = app[NOTIFIER]
    if isinstance(notifier, RoutingNotifier):
        # Telegram's router: one client, notices on the channel they used last.
        notifier.channels[CHANNEL.name] = WhatsAppNotifier(outbox)
    else:
        notifier = RoutingNotifier({CHANNEL.name: WhatsAppNotifier(outbox)}, fallback=notifier)
        app[NOTIFIER] = notifier
    app[WHATSAPP_BOT] = WhatsAppBot(gateway, outbox, Dialog(notifier, notifier.companies))
    yield
    await outbox.close()


def inbox_handler(app: web.Application) -> Handler:
    """The handler for source `whatsapp`: `session.status` keeps the salon's link state
    current, `message` goes to the channel; the channel is looked up when an event is
    handled, since it starts with the app."""

    async def whatsapp_handler(event: InboxEvent) -> list[LedgerResult]:
        kind = event.payload.get("event")
        if kind == "session.status":
            await onboarding.apply_session_status(event.payload, event.company_id)
        elif kind == "message":
            channel = app.get(WHATSAPP_BOT)
            if channel is None:
                log.info("WhatsApp message %s stored; the channel is off", event.id)
            else:
                await channel.handle(event.payload, event.company_id)
        else:
            log.debug("WhatsApp %s event %s stored, not acted on", kind, event.id)
        # Balance changes a message makes (a staff redeem) are told by the dialog itself.
        return []

    return whatsapp_handler
