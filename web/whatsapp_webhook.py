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
from web.ingest import Event, Refused, ingest
from web.keys import WHATSAPP, WHATSAPP_SESSIONS

log = logging.getLogger(__name__)


async def whatsapp_webhook(request: web.Request) -> web.Response:
    gateway = request.app[WHATSAPP]
    if gateway is None:
        return web.json_response({"ok": False, "error": "WhatsApp is not configured"}, status=503)
    sessions = request.app[WHATSAPP_SESSIONS]

    async def parse(raw: bytes) -> Event:
        try:
            event = gateway.verify_webhook(raw, request.headers)
        except WebhookRejected as exc:
            log.warning("WhatsApp webhook refused (%s): %s", type(exc).__name__, exc)
            raise Refused(exc.status, str(exc)) from None
        company_id = await sessions.company_id(event.session)
        return Event(dedupe_key(event)[:255], inbox.storable(event.data), company_id)

    return await ingest(request, SOURCE, parse)


def dedupe_key(event: WebhookEvent) -> str:
    message_id = event.payload.get("id")
    # A message id no database keeps (a NUL in it) falls back to the signed event id.
    if event.event == "message" and message_id and jsonbody.clean_text(message_id):
        return f"message:{event.session}:{message_id}"
    return f"event:{event.id}"


def setup_routes(app: web.Application) -> None:
    app[WHATSAPP_SESSIONS] = SessionCompanies()
    app.router.add_post("/webhook/whatsapp", whatsapp_webhook)
