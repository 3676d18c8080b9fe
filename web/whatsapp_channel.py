"""The WhatsApp channel inside the web process: the Outbox, the channel (bot.whatsapp) and its
notifier plugged into the router of balance notices, and the inbox handler for source
`whatsapp`. Off (app[WHATSAPP_BOT] is None) while the gateway is not configured. A watch asks
the gateway every minute while it works and with capped backoff while it does not, so /health
and the log (once down, once back) follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from core.backoff import Backoff
from core.health import PartStates
from core.inbox import Handler
from core.ledger import LedgerResult
from core.models import InboxEvent
from core.whatsapp import (
    GatewayError,
    GatewayUnauthorized,
    WhatsAppGateway,
    apply_session_status,
)
from web.keys import (
    BACKOFF,
    CLOCK,
    METRICS,
    NOTIFIER,
    PART_STATES,
    SETTINGS,
    WHATSAPP,
    WHATSAPP_BOT,
)

log = logging.getLogger(__name__)

PART = "whatsapp"
GATEWAY_DOWN = "the WhatsApp gateway does not answer"
GATEWAY_REFUSES = "the WhatsApp gateway refuses WHATSAPP_GATEWAY_API_KEY"
# How often a gateway that works is asked whether it still does.
GATEWAY_CHECK_EVERY = 60.0


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
    watch = asyncio.create_task(
        watch_gateway(gateway, app[PART_STATES], Backoff(app[BACKOFF], app[CLOCK])),
        name="whatsapp-gateway-watch",
    )
    yield
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    await outbox.close()


def gateway_failing(states: PartStates, exc: Exception) -> None:
    reason = GATEWAY_REFUSES if isinstance(exc, GatewayUnauthorized) else GATEWAY_DOWN
    states.failing(PART, reason, f"{type(exc).__name__}: {exc}")


async def watch_gateway(gateway: WhatsAppGateway, states: PartStates, backoff: Backoff) -> None:
    """Runs as long as the process: the gateway's state for /health. Sending needs no restart
    after an outage (each message is its own request), so knowing is the healing here; the
    sessions themselves are the watchdog's (core.whatsapp.watchdog)."""
    while True:
        try:
            await gateway.ping(retries=0)
        except GatewayError as exc:
            gateway_failing(states, exc)
            log.debug("WhatsApp gateway ping failed", exc_info=True)
            await backoff.wait()
            continue
        states.ok(PART)
        backoff.reset()
        await backoff.clock.sleep(GATEWAY_CHECK_EVERY)


def inbox_handler(app: web.Application) -> Handler:
    """The handler for source `whatsapp`: `session.status` keeps the salon's link state
    current, `message` goes to the channel; the channel is looked up when an event is
    handled, since it starts with the app."""

    async def whatsapp_handler(event: InboxEvent) -> list[LedgerResult]:
        kind = event.payload.get("event")
        if kind == "session.status":
            await apply_session_status(event.payload, event.company_id)
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
