"""The WhatsApp channel inside the web process (bot.whatsapp), started by web.channels with the
other chat channels over their shared Outbox, and the inbox handler for source `whatsapp`.
Off (app[WHATSAPP_BOT] is None) while the gateway is not configured. A watch asks the gateway
every minute while it works and with capped backoff while it does not, so /health and the log
(once down, once back) follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.dialog import Dialog
from bot.whatsapp.channel import WhatsAppBot
from bot.whatsapp.outbox import Outbox
from core.backoff import Backoff
from core.health import PartStates
from core.inbox import Handler
from core.ledger import LedgerResult
from core.models import InboxEvent
from core.whatsapp import GatewayError, GatewayUnauthorized, WhatsAppGateway, apply_session_status
from web.keys import BACKOFF, CLOCK, PART_STATES, WHATSAPP_BOT

log = logging.getLogger(__name__)

PART = "whatsapp"
GATEWAY_DOWN = "the WhatsApp gateway does not answer"
GATEWAY_REFUSES = "the WhatsApp gateway refuses WHATSAPP_GATEWAY_API_KEY"
# How often a gateway that works is asked whether it still does.
GATEWAY_CHECK_EVERY = 60.0


@contextlib.asynccontextmanager
async def running(
    app: web.Application, outbox: Outbox, dialog: Dialog
) -> AsyncIterator[WhatsAppBot]:
    """The channel answering WhatsApp messages over `outbox` (web.channels opens and closes
    it), and the watch on its gateway."""
    gateway = outbox.gateway
    watch = asyncio.create_task(
        watch_gateway(gateway, app[PART_STATES], Backoff(app[BACKOFF], app[CLOCK])),
        name="whatsapp-gateway-watch",
    )
    try:
        yield WhatsAppBot(gateway, outbox, dialog)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


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
