"""`salonbot demo`: the service with a demo salon, its YClients on loopback, and a web chat.

`create_app(settings, demo=DemoYClients())` (web.app) calls `setup_demo`, which adds:

- `demo_ctx`, after the channels and the inbox worker: starts the demo YClients
  (web.demo.yclients), registers the salon through the real YClients client as
  `salonbot company add` does, syncs it (catalogue and the week's records, the production
  sync), makes the demo's administrator a staff member, and opens the web chat
  (bot.webchat) over the same dialog as Telegram and WhatsApp;
- the web chat's channel (`WEB_CHAT`), which web.channels adds to the one Outbound: notices,
  reminders and admins' answers for the chat's people go into its log;
- the page at `GET /` (web.demo.page) and the JSON API under `/demo/api/` (a contract,
  README "The demo"), and `GET /demo/booking`, the stand-in for YClients' booking widget.

`salonbot serve` never calls it: production never has a demo salon.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from bot.dialog import Dialog
from bot.webchat import ChatLog, Entry, Person, WebChannel, WebChat
from core import companies
from core import staff as staff_service
from core.bookings.sync import sync_company
from core.i18n import locale_from_accept_language
from core.models import Company, IntegrationStatus, StaffRole
from core.settings import Settings
from core.yclients import YClientsClient
from web.demo import catalogue, page
from web.demo.yclients import Act, DemoYClients, WebhookFailed
from web.edge import BodyRefused, read_json
from web.keys import DEMO, DEMO_YCLIENTS, NOTIFIER, OUTBOUND, SETTINGS, WEB_CHAT, YCLIENTS

log = logging.getLogger(__name__)
# The page and scripts read Russian; no \u escapes for every letter.
_dumps = functools.partial(json.dumps, ensure_ascii=False)

ROLES = ("client", "staff")
PEOPLE = (
    Person("client", catalogue.CLIENT_PHONE, catalogue.CLIENT_NAME),
    Person("staff", catalogue.STAFF_PHONE, catalogue.STAFF_NAME, staff=True),
)
MAX_BODY = 16 * 1024
MAX_TEXT = 2000
# The longest a poll may wait for the next message (`GET /demo/api/messages?wait=`).
MAX_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class Demo:
    chat: WebChat
    yclients: DemoYClients
    company_id: int
    # Where the demo YClients posts the salon's record webhooks (this process, on loopback).
    webhook_url: str


def local_base_url(host: str, port: int) -> str:
    """This process as a browser or the demo YClients on the same machine reaches it (a
    wildcard address listens on loopback too)."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def open_salon(client: YClientsClient, yclients: DemoYClients) -> Company:
    """The demo salon, registered and synced through the production paths."""
    info = await client.company(catalogue.SALON_ID)
    company, _created = await companies.upsert_from_yclients(
        info, status=IntegrationStatus.ACTIVE, user_token=yclients.user_token
    )
    stats = await sync_company(client, company, full=True)
    await staff_service.add_staff(
        company, phone=catalogue.STAFF_PHONE, name=catalogue.STAFF_NAME, role=StaffRole.ADMIN
    )
    log.info(
        "demo salon %s: %d records synced, %d bonuses awarded",
        company.yclients_id,
        stats.fetched,
        stats.awarded,
    )
    return company


async def demo_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the ORM, the YClients client, NOTIFIER (the channels) and the inbox worker, which
    takes the salon's webhooks: listed after them."""
    yclients = app[DEMO_YCLIENTS]
    client = app[YCLIENTS]
    if client is None:
        raise RuntimeError("the demo needs its YClients (settings from web.demo.demo_settings)")
    settings = app[SETTINGS]
    yclients.set_bookform(f"{settings.base_url}/demo/booking")
    await yclients.start()
    try:
        company = await open_salon(client, yclients)
        base = local_base_url(settings.http_host, settings.http_port)
        # As web.channels builds the chat channels' dialog: a reminder's answer goes to YClients.
        dialog = Dialog(app[NOTIFIER], outbound=app[OUTBOUND], yclients=client)
        chat = WebChat(dialog, company, PEOPLE, app[WEB_CHAT].log)
        app[DEMO] = Demo(chat, yclients, company.id, companies.webhook_url(base, company))
        yield
    finally:
        await yclients.close()


async def _close_log(app: web.Application) -> None:
    # On shutdown, before the handlers are waited for: a poll waiting for news answers now.
    app[WEB_CHAT].log.close()


def demo_settings(settings: Settings, yclients: DemoYClients) -> Settings:
    """The settings of a demo process: YClients is the demo's own, and the outside channels
    stay off (a real bot token in .env must not serve the demo salon to real people)."""
    return settings.model_copy(
        update={
            "yclients_api_url": yclients.url,
            "yclients_partner_token": SecretStr(yclients.partner_token),
            "yclients_user_token": None,
            "yclients_app_id": None,
            "telegram_bot_token": None,
            "whatsapp_gateway_url": None,
            "whatsapp_gateway_api_key": None,
            "whatsapp_webhook_hmac_key": None,
        }
    )


def setup_demo(app: web.Application, yclients: DemoYClients) -> None:
    app[DEMO_YCLIENTS] = yclients
    app[WEB_CHAT] = WebChannel(ChatLog(), PEOPLE)
    app.cleanup_ctx.append(demo_ctx)
    app.on_shutdown.append(_close_log)
    app.router.add_get("/", page_handler)
    app.router.add_get("/demo/booking", booking_handler)
    app.router.add_post("/demo/api/message", message_handler)
    app.router.add_get("/demo/api/messages", messages_handler)
    app.router.add_post("/demo/api/yclients", yclients_handler)
    app.router.add_get("/demo/api/yclients", next_visit_handler)


# --- the page ---


def _html(request: web.Request, text: str) -> web.Response:
    response = web.Response(
        text=text, content_type="text/html", headers={"Vary": "Accept-Language"}
    )
    response.headers["Content-Security-Policy"] = page.CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def page_handler(request: web.Request) -> web.Response:
    """GET /"""
    locale = locale_from_accept_language(request.headers.get("Accept-Language"))
    company = await Company.get(id=request.app[DEMO].company_id)
    return _html(request, page.demo_page(locale, company.title))


async def booking_handler(request: web.Request) -> web.Response:
    """GET /demo/booking: where a real salon's YClients booking widget would open."""
    locale = locale_from_accept_language(request.headers.get("Accept-Language"))
    company = await Company.get(id=request.app[DEMO].company_id)
    return _html(request, page.booking_page(locale, company))


# --- the API ---


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def _refuse(status: int, message: str) -> web.Response:
    return _json(
        {"ok": False, "error": message}, status=status, headers={"Cache-Control": "no-store"}
    )


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request, MAX_BODY)
    if not isinstance(body, dict):
        raise BodyRefused(400, "the body must be a JSON object")
    return body


def _reply(entry: Entry) -> dict[str, Any]:
    answer: dict[str, Any] = {"text": entry.text, "buttons": list(entry.buttons)}
    if entry.image is not None:
        answer["image"] = "data:image/png;base64," + base64.b64encode(entry.image).decode()
    if entry.links:
        answer["links"] = [{"text": text, "url": url} for text, url in entry.links]
    if entry.menu is not None:
        answer["menu"] = [list(row) for row in entry.menu]
    return answer


async def message_handler(request: web.Request) -> web.Response:
    """POST /demo/api/message {"role": "client"|"staff", "text": "…"} → {"replies": […]}"""
    try:
        body = await _body(request)
    except BodyRefused as exc:
        return _refuse(exc.status, exc.reason)
    role, text = body.get("role"), body.get("text")
    if role not in ROLES:
        return _refuse(400, 'role must be "client" or "staff"')
    if not isinstance(text, str) or not text.strip():
        return _refuse(400, "text must be a non-empty string")
    if len(text) > MAX_TEXT:
        return _refuse(400, f"text must be at most {MAX_TEXT} characters")
    entries = await request.app[DEMO].chat.say(str(role), text)
    return _json({"replies": [_reply(e) for e in entries]})


async def messages_handler(request: web.Request) -> web.Response:
    """GET /demo/api/messages?after=N[&wait=S]: the chat log after message N (both roles, the
    visitor's messages, the bot's answers and notices), waiting up to S seconds for one."""
    try:
        after = int(request.query.get("after", "0"))
        wait = float(request.query.get("wait", "0"))
    except ValueError:
        return _refuse(400, "after must be an integer and wait a number of seconds")
    if after < 0 or not 0 <= wait <= MAX_WAIT:
        return _refuse(400, f"after must be 0 or more and wait between 0 and {MAX_WAIT:g}")
    chat_log = request.app[WEB_CHAT].log
    entries = chat_log.after(after)
    if not entries and wait > 0:
        try:
            async with asyncio.timeout(wait):
                entries = await chat_log.wait_after(after)
        except TimeoutError:
            entries = []
    messages = [
        {
            "id": e.id,
            "role": e.role,
            "from": e.sender,
            **({"notice": True} if e.notice else {}),
            **_reply(e),
        }
        for e in entries
    ]
    return _json(
        {"messages": messages, "last": chat_log.last}, headers={"Cache-Control": "no-store"}
    )


def _visit(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    status = (
        "cancelled"
        if record["deleted"]
        else {1: "came", 2: "confirmed", -1: "no_show"}.get(record["attendance"], "waiting")
    )
    return {
        "record_id": record["id"],
        "datetime": datetime.fromisoformat(record["datetime"]).isoformat(),
        "services": ", ".join(s["title"] for s in record["services"]),
        "master": record["staff"]["name"],
        "cost": sum(int(s["cost"]) for s in record["services"]),
        "status": status,
    }


async def yclients_handler(request: web.Request) -> web.Response:
    """POST /demo/api/yclients {"action": "complete"|"cancel"|"move"}: the salon acts on the
    demo client's next visit in YClients, which tells the app by webhook."""
    try:
        body = await _body(request)
    except BodyRefused as exc:
        return _refuse(exc.status, exc.reason)
    action = body.get("action")
    if action not in {a.value for a in Act}:
        return _refuse(400, 'action must be "complete", "cancel" or "move"')
    demo = request.app[DEMO]
    try:
        record = await demo.yclients.act(Act(str(action)), catalogue.CLIENT_PHONE, demo.webhook_url)
    except WebhookFailed as exc:
        log.warning("demo: the app refused the salon's webhook: %s", exc)
        return _refuse(502, f"the webhook was not taken: {exc}")
    return _json(
        {
            "ok": True,
            "record_id": record["id"],
            "visit": _visit(record),
            "next_visit": _visit(demo.yclients.next_visit(catalogue.CLIENT_PHONE)),
        }
    )


async def next_visit_handler(request: web.Request) -> web.Response:
    """GET /demo/api/yclients: the demo client's next visit, as the salon sees it."""
    visit = request.app[DEMO].yclients.next_visit(catalogue.CLIENT_PHONE)
    return _json({"next_visit": _visit(visit)}, headers={"Cache-Control": "no-store"})
