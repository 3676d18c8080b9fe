"""POST /webhook/whatsapp: WAHA events for every salon's session.

The HMAC-SHA512 is checked on the raw bytes before anything parses them, a stale timestamp is
refused, and the event is stored in the inbox under its (signed) event id — a `message` event
under its message id instead, so a message WAHA reports twice under two event ids is still
answered once — and WAHA's retries and replays are stored once. The inbox worker acts on it
(web.whatsapp_channel): `session.status` keeps the salon's link state current
(core.whatsapp.link), `message` goes to the WhatsApp channel (bot.whatsapp).
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.companies import SessionCompanies
from core import inbox, jsonbody
from core.whatsapp import WHATSAPP as SOURCE
from core.whatsapp import WebhookEvent, WebhookRejected
from web.edge import BodyRefused, read_body, refused_response
from web.keys import INBOX_WAKEUP, METRICS, WHATSAPP, WHATSAPP_SESSIONS

log = logging.getLogger(__name__)

MAX_BODY = 512 * 1024


async def whatsapp_webhook(request: web.Request) -> web.Response:
    gateway = request.app[WHATSAPP]
    if gateway is None:
        return web.json_response({"ok": False, "error": "WhatsApp is not configured"}, status=503)
    try:
        raw = await read_body(request, MAX_BODY)
    except BodyRefused as refused:
        return refused_response(refused, {"ok": False, "error": refused.reason})
    try:
        event = gateway.verify_webhook(raw, request.headers)
    except WebhookRejected as exc:
        log.warning("WhatsApp webhook refused (%s): %s", type(exc).__name__, exc)
        return web.json_response({"ok": False, "error": str(exc)}, status=exc.status)
    company_id = await request.app[WHATSAPP_SESSIONS].company_id(event.session)
    try:
        stored = await inbox.store(
            SOURCE, dedupe_key(event)[:255], inbox.storable(event.data), company_id
        )
        created = stored.created
    except Exception:
        log.exception("a WhatsApp webhook could not be stored")
        return web.json_response({"ok": False, "error": "try again later"}, status=503)
    request.app[METRICS].inbox_received.labels(SOURCE, str(not created).lower()).inc()
    if created:
        request.app[INBOX_WAKEUP].set()
    return web.json_response({"ok": True, "duplicate": not created})


def dedupe_key(event: WebhookEvent) -> str:
    message_id = event.payload.get("id")
    # A message id no database keeps (a NUL in it) falls back to the signed event id.
    if event.event == "message" and message_id and jsonbody.clean_text(message_id):
        return f"message:{event.session}:{message_id}"
    return f"event:{event.id}"


def setup_routes(app: web.Application) -> None:
    app[WHATSAPP_SESSIONS] = SessionCompanies()
    app.router.add_post("/webhook/whatsapp", whatsapp_webhook)
