"""The visit loop in `salonbot serve`: the kinds of scheduled messages and their texts, and the
dispatcher task that sends them (bot/visits/), over the chat channels of OUTBOUND.

Telegram's channel is paced to its limits (bot/visits/pacing.py) on the loop's own clock
(VISIT_CLOCK); the others pace themselves. While no chat channel is on the dispatcher does
not run: the rows wait, planned, rather than failing for want of a channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot import digest
from bot.dialog import TELEGRAM as TELEGRAM_CHANNEL
from bot.dialog import visit_texts
from bot.outbound import ClientChannel, Outbound
from bot.visits import Dispatcher, Kinds, Paced, texts
from web.keys import OUTBOUND, SETTINGS, VISIT_CLOCK, VISIT_KINDS, VISIT_LOOP

log = logging.getLogger(__name__)


def visit_kinds() -> Kinds:
    """Every kind the dispatcher sends, each registered once: the booking notices and the
    silent-client alert here; the reminders, the after-visit question and the digest by
    their features."""
    registry = Kinds()
    texts.register(registry)
    visit_texts.register(registry)
    digest.register(registry)
    return registry


def paced(outbound: Outbound, app: web.Application) -> Outbound:
    channels: dict[str, ClientChannel] = {
        name: Paced(channel, app[VISIT_CLOCK], per_second=app[SETTINGS].telegram_send_rate)
        if name == TELEGRAM_CHANNEL.name
        else channel
        for name, channel in outbound.channels.items()
    }
    return Outbound(channels)


async def visit_loop_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the ORM and the channels (OUTBOUND): list it after channels_ctx."""
    outbound = app[OUTBOUND]
    dispatcher = (
        Dispatcher(paced(outbound, app), app[VISIT_KINDS], clock=app[VISIT_CLOCK])
        if outbound.channels
        else None
    )
    app[VISIT_LOOP] = dispatcher
    if dispatcher is None:
        log.info("visit loop: no chat channel is on, scheduled messages wait")
        yield
        return
    task = asyncio.create_task(dispatcher.run(), name="visit-loop")
    yield
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        log.error("the visit loop ended with an error", exc_info=task.exception())
