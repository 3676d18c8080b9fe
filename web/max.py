"""The MAX bot inside the web process (bot.max): long polling as a task in the embedded
default, or updates POSTed to /webhook/max in production, chosen by MAX_MODE. Started by
web.channels with the other chat channels; off (app[MAX_BOT] is None) without MAX_BOT_TOKEN,
and core.parts has said why in the log.

Start-up asks `GET /me` (the bot's username, for the deep links), then in polling mode removes
any subscription (MAX sends nothing to polling while one exists) and polls; in webhook mode it
subscribes PUBLIC_BASE_URL/webhook/max with MAX_WEBHOOK_SECRET, removes our stale URLs (a
second subscription adds a URL rather than replacing one), and checks every WATCH_EVERY that
the subscription is still there (MAX drops it after 8 hours of failed deliveries). While the
API cannot be reached it retries with capped backoff and /health says `failing`; a token MAX
refuses (401) is not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from bot.dialog import Dialog
from bot.max.channel import MaxBot
from core.backoff import Backoff
from core.health import PartStates
from core.max import MaxClient, MaxUnauthorized
from web.edge import BodyRefused, ascii_header, read_json, refused_response
from web.ingest import WEBHOOK_MAX_BODY
from web.keys import BACKOFF, CLOCK, MAX_BOT, PART_STATES, SETTINGS

log = logging.getLogger(__name__)

PART = "max"
WEBHOOK_PATH = "/webhook/max"
SECRET_HEADER = "X-Max-Bot-Api-Secret"  # noqa: S105 (a header name)
# Long-poll wait per GET /updates (MAX allows up to 90 s); shutdown cancels the one in flight.
POLLING_TIMEOUT = 30
# How often webhook mode checks that MAX still has our subscription.
WATCH_EVERY = 600.0
REFUSED = "the MAX Bot API refuses MAX_BOT_TOKEN: copy it again from business.max.ru and restart"
_REASONS = {
    "me": "cannot reach the MAX Bot API",
    "subscriptions": "cannot clear the webhook subscription before polling",
    "updates": "cannot fetch updates",
    "subscribe": "cannot register the webhook, so no updates arrive",
}


@contextlib.asynccontextmanager
async def running(app: web.Application, client: MaxClient, dialog: Dialog) -> AsyncIterator[MaxBot]:
    """The bot answering updates over `client` (web.channels opens and closes it)."""
    settings = app[SETTINGS]
    token = settings.max_bot_token.get_secret_value() if settings.max_bot_token else ""
    bot = MaxBot(client, dialog, token)
    task = asyncio.create_task(_keep_running(app, bot), name="max")
    try:
        yield bot
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _keep_running(app: web.Application, bot: MaxBot) -> None:
    settings = app[SETTINGS]
    states = app[PART_STATES]
    clock = app[CLOCK]
    backoff = Backoff(app[BACKOFF], clock)
    client = bot.client
    while True:
        step = "me"
        try:
            me = await client.me()
            username = me.get("username")
            bot.username = username if isinstance(username, str) and username else None
            if settings.max_mode == "polling":
                step = "subscriptions"
                for url in await client.subscriptions():
                    await client.unsubscribe(url)
                states.ok(PART)
                backoff.reset()
                log.info("max: polling %s", client.base_url)
                step = "updates"
                await _poll(bot, states, backoff)
                return
            step = "subscribe"
            await _subscribe(app, client)
            states.ok(PART)
            backoff.reset()
            await clock.sleep(WATCH_EVERY)
            continue
        except asyncio.CancelledError:
            raise
        except MaxUnauthorized as exc:
            states.failing(PART, REFUSED, f"{step}: {_err(exc)}", retried=False)
            return
        except Exception as exc:
            states.failing(
                PART, _REASONS.get(step, "the MAX Bot API fails"), f"{step}: {_err(exc)}"
            )
            log.debug("max: %s failed", step, exc_info=True)
        await backoff.wait()


async def _poll(bot: MaxBot, states: PartStates, backoff: Backoff) -> None:
    """GET /updates for ever; a batch is handled (people side by side, each person's updates
    in order) before the next call commits it with the marker."""
    marker: int | None = None
    while True:
        updates, marker = await bot.client.updates(marker, timeout=POLLING_TIMEOUT)
        states.ok(PART)
        backoff.reset()
        if updates:
            await asyncio.gather(*(_handle(bot, u) for u in updates))


async def _handle(bot: MaxBot, update: Mapping[str, Any]) -> None:
    try:
        await bot.handle(update)
    except Exception:
        # Logged; polling goes on with the others.
        log.exception("max: an update failed")


async def _subscribe(app: web.Application, client: MaxClient) -> None:
    settings = app[SETTINGS]
    if settings.max_webhook_secret is None:
        raise RuntimeError("a webhook without MAX_WEBHOOK_SECRET")
    url = settings.base_url + WEBHOOK_PATH
    existing = await client.subscriptions()
    for stale in existing:
        if stale != url and stale.endswith(WEBHOOK_PATH):
            await client.unsubscribe(stale)
    if url not in existing:
        await client.subscribe(url, settings.max_webhook_secret.get_secret_value())
        log.info("max: webhook subscribed at %s", url)


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def max_webhook_handler(request: web.Request) -> web.Response:
    """One update from MAX, handled before the answer (a non-200 makes MAX retry it)."""
    bot = request.app.get(MAX_BOT)
    settings = request.app[SETTINGS]
    secret = settings.max_webhook_secret
    if bot is None or secret is None or settings.max_mode != "webhook":
        raise web.HTTPNotFound()
    header = ascii_header(request, SECRET_HEADER)
    if not hmac.compare_digest(header.encode(), secret.get_secret_value().encode()):
        raise web.HTTPForbidden()
    try:
        data = await read_json(request, WEBHOOK_MAX_BODY)
    except BodyRefused as refused:
        return refused_response(refused, {"ok": False, "error": refused.reason})
    if not isinstance(data, dict) or not isinstance(data.get("update_type"), str):
        return web.json_response({"ok": False, "error": "not a MAX update"}, status=400)
    try:
        await bot.handle(data)
    except Exception:
        # Logged; answering 200 keeps MAX from resending it for hours.
        log.exception("max: webhook update failed")
    return web.json_response({"ok": True})


def setup_routes(app: web.Application) -> None:
    app.router.add_post(WEBHOOK_PATH, max_webhook_handler)
