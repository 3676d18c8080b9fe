"""Typed application keys: everything the app holds, in one place."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from bot.companies import SessionCompanies
from bot.max.channel import MaxBot
from bot.outbound import Outbound
from bot.telegram.dispatcher import TelegramBot
from bot.telegram.username import BotUsername
from bot.whatsapp.channel import WhatsAppBot
from core.backoff import BackoffPolicy, Clock
from core.health import PartStates
from core.inbox import Handlers, InboxPolicy
from core.notifications import Notifier
from core.settings import Settings
from core.whatsapp import WhatsAppGateway
from core.yclients import YClientsClient
from web.metrics import Metrics

if TYPE_CHECKING:
    from bot.visits import Dispatcher, Kinds
    from web.sync_jobs import SyncJobs


class InboxWakeup(asyncio.Event):
    """Set when an inbound event is stored, so the inbox worker wakes at once. `set(bulk=True)`
    also notes when: bulk events (YClients changes, which come in bursts) let the worker
    gather a burst before it starts (InboxPolicy.gather_quiet)."""

    last_bulk: float = -math.inf  # clock()
    # InboxWorker's clock (tests set both to one fake).
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def set(self, *, bulk: bool = False) -> None:
        if bulk:
            self.last_bulk = self.clock()
        super().set()


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
# None while YCLIENTS_PARTNER_TOKEN is unset.
YCLIENTS: web.AppKey[YClientsClient | None] = web.AppKey("yclients")
# Delivers balance notices after commit (core.notifications.notify_committed): the router over
# the chat channels that are on, set once by web.channels.channels_ctx.
NOTIFIER = web.AppKey("notifier", Notifier)
# Every message nobody just asked for (bot.outbound: the person's last channel first, then a
# fallback): notices, reminders, admin alerts and answers; set once by channels_ctx.
OUTBOUND = web.AppKey("outbound", Outbound)
# Where that router sends a notice no channel that is on can deliver (a log line; tests set a
# recording one before start-up).
NOTICE_FALLBACK = web.AppKey("notice_fallback", Notifier)
# Set when an inbound event is stored, so the inbox worker wakes at once.
INBOX_WAKEUP = web.AppKey("inbox_wakeup", InboxWakeup)
# Admits YClients webhooks to the store in arrival order (web.yclients.STORES_IN_FLIGHT).
YCLIENTS_STORES = web.AppKey("yclients_stores", asyncio.Semaphore)
# How the inbox worker drains the inbox, and the handler for each event source.
INBOX_POLICY = web.AppKey("inbox_policy", InboxPolicy)
INBOX_HANDLERS: web.AppKey[Handlers] = web.AppKey("inbox_handlers")
# None while the WHATSAPP_* settings are incomplete (one log line says which is missing).
WHATSAPP: web.AppKey[WhatsAppGateway | None] = web.AppKey("whatsapp")
# The Telegram bot's username for the client links on the onboarding page.
BOT_USERNAME = web.AppKey("bot_username", BotUsername)
# How long a request's body may take to arrive (web.edge.read_body; tests shorten it).
BODY_TIMEOUT = web.AppKey("body_timeout", float)
# How often the onboarding page asks for the WhatsApp status (tests shorten it).
ONBOARDING_POLL_MS = web.AppKey("onboarding_poll_ms", int)
# The running Telegram bot (dispatcher, bot, dialog); None while the part is off.
TELEGRAM: web.AppKey[TelegramBot | None] = web.AppKey("telegram")
# The WhatsApp channel (answers and notices over each salon's number); None while the gateway
# is not configured.
WHATSAPP_BOT: web.AppKey[WhatsAppBot | None] = web.AppKey("whatsapp_bot")
# The MAX bot (updates in, answers out); None while MAX_BOT_TOKEN is unset.
MAX_BOT: web.AppKey[MaxBot | None] = web.AppKey("max_bot")
# Which salon each WhatsApp gateway session belongs to, as the webhook looks it up.
WHATSAPP_SESSIONS = web.AppKey("whatsapp_sessions", SessionCompanies)
# The syncs asked for over the API, one job per salon (web.sync_jobs.sync_jobs_ctx).
SYNC_JOBS: web.AppKey[SyncJobs] = web.AppKey("sync_jobs")
# Where the channels' retry loops read the time and sleep (tests move it by hand), and how
# they back off while their outside system is down.
CLOCK = web.AppKey("clock", Clock)
BACKOFF = web.AppKey("backoff", BackoffPolicy)
# What each running part last found out about its outside system (/health); set by
# web.app.part_states_ctx, written by the channels.
PART_STATES = web.AppKey("part_states", PartStates)
# The kinds of scheduled messages and what each says (web.visit_loop.visit_kinds; a feature
# registers its kinds in create_app), and the dispatcher sending them (None while no chat
# channel is on).
VISIT_KINDS: web.AppKey[Kinds] = web.AppKey("visit_kinds")
VISIT_LOOP: web.AppKey[Dispatcher | None] = web.AppKey("visit_loop")
