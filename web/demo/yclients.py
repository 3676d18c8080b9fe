"""The demo's YClients: the REST paths, envelopes and token checks of the real API on a
loopback port, over the demo salon (web.demo.catalogue), and the salon's side of the demo —
a visit completed, cancelled or moved — told to the app as YClients tells it: a record webhook.

So the demo runs the production paths: the app's real YClients client reads the salon, its
catalogue and its records from here (the first sync), and every change comes in through
`POST /webhook/yclients/{hook_token}`, the inbox and the ledger. Only what the demo needs is
served; paths and shapes follow shared/reference/yclients-api.md.
"""

from __future__ import annotations

import copy
import hmac
import itertools
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from core.phones import normalize_phone
from core.yclients import ACCEPT
from web.demo import catalogue
from web.demo.catalogue import CHANGE_FORMAT, JSONDict

log = logging.getLogger(__name__)


class Act(StrEnum):
    COMPLETE = "complete"
    CANCEL = "cancel"
    MOVE = "move"


class WebhookFailed(Exception):
    """The app did not take the webhook (its answer is the message)."""


def envelope(data: Any, meta: Any = None) -> JSONDict:
    return {"success": True, "data": data, "meta": [] if meta is None else meta}


def _fail(status: int, message: str) -> web.Response:
    return web.json_response(
        {"success": False, "data": None, "meta": {"message": message}}, status=status
    )


def loopback_socket() -> socket.socket:
    """A listening socket on a free loopback port, bound before the event loop starts so the
    address is known when the app's settings are made."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


class DemoYClients:
    """The demo salon in YClients, served on `url` once `start()`ed."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.partner_token = secrets.token_urlsafe(24)
        self.user_token = secrets.token_urlsafe(24)
        self.tz = ZoneInfo(catalogue.TIMEZONE)
        self._clock = clock or (lambda: datetime.now(self.tz))
        self.company = catalogue.company()
        self.records: dict[int, JSONDict] = {
            r["id"]: r for r in catalogue.week(self.now().replace(microsecond=0))
        }
        self._ids = itertools.count(max(self.records) + 1)
        self._sock: socket.socket | None = loopback_socket()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def now(self) -> datetime:
        return self._clock().astimezone(self.tz)

    def set_bookform(self, url: str) -> None:
        """The salon's online-booking link (the demo's stand-in page for YClients' widget)."""
        self.company["bookforms"] = [
            {"id": 1, "title": "Онлайн-запись", "is_default": 1, "url": url}
        ]

    # --- lifecycle ---

    async def start(self) -> None:
        if self._sock is None:
            raise RuntimeError("the demo YClients has been closed")
        app = web.Application(middlewares=[self._checks])
        app.router.add_get("/api/v1/company/{company_id}", self._company)
        app.router.add_get("/api/v1/company/{company_id}/services", self._services)
        app.router.add_get("/api/v1/company/{company_id}/staff", self._staff)
        app.router.add_get("/api/v1/records/{company_id}", self._records)
        app.router.add_get("/api/v1/record/{company_id}/{record_id}", self._record)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # --- the salon's side ---

    def next_visit(self, phone: str) -> JSONDict | None:
        """The client's earliest visit that is still to happen: not cancelled, not settled."""
        waiting = [
            r
            for r in self.records.values()
            if not r["deleted"]
            and r["attendance"] in (0, 2)
            and normalize_phone((r.get("client") or {}).get("phone")) == phone
        ]
        return min(waiting, key=lambda r: (r["datetime"], r["id"]), default=None)

    async def act(self, act: Act, phone: str, webhook_url: str) -> JSONDict:
        """Do `act` to the client's next visit as a salon admin would in YClients, and send the
        webhook. A client without a visit to act on is booked one first (two days ahead), so
        the demo never runs dry."""
        record = self.next_visit(phone)
        if record is None:
            record = self._book(phone)
            await self._post(webhook_url, record, "create")
        if act is Act.COMPLETE:
            self._change(record, attendance=1, visit_attendance=1, paid_full=1)
        elif act is Act.MOVE:
            moved = datetime.fromisoformat(record["datetime"]) + timedelta(days=1)
            self._change(
                record, datetime=moved.isoformat(), date=moved.strftime("%Y-%m-%d %H:%M:%S")
            )
        else:
            self._change(record, deleted=True)
        await self._post(webhook_url, record, "delete" if act is Act.CANCEL else "update")
        return record

    def _book(self, phone: str) -> JSONDict:
        """A new visit for the client: the service of their latest visit, two days ahead."""
        theirs = [
            r
            for r in self.records.values()
            if normalize_phone((r.get("client") or {}).get("phone")) == phone
        ]
        latest = max(theirs, key=lambda r: r["datetime"])
        when = (self.now() + timedelta(days=2)).replace(hour=13, minute=0, second=0, microsecond=0)
        client = latest["client"]
        record = catalogue.record(
            next(self._ids),
            when=when,
            service_id=latest["services"][0]["id"],
            client=(client["name"], str(client["phone"])),
            attendance=0,
            changed=self._stamp_after(None),
            client_id=client["id"],
        )
        self.records[record["id"]] = record
        return record

    def _change(self, record: JSONDict, **changes: Any) -> None:
        record.update(changes)
        previous = datetime.strptime(record["last_change_date"], CHANGE_FORMAT)
        record["last_change_date"] = self._stamp_after(previous).strftime(CHANGE_FORMAT)

    def _stamp_after(self, previous: datetime | None) -> datetime:
        # A change is always later than the one before it, as YClients' own dates are.
        now = self.now().replace(microsecond=0)
        return now if previous is None else max(now, previous + timedelta(seconds=1))

    async def _post(self, url: str, record: JSONDict, status: str) -> None:
        """The record's event, as YClients posts it to the salon's webhook URL."""
        if self._session is None:
            raise RuntimeError("the demo YClients is not started")
        event = {
            "company_id": record["company_id"],
            "resource": "record",
            "resource_id": record["id"],
            "status": status,
            "data": copy.deepcopy(record),
        }
        async with self._session.post(url, json=event) as response:
            if response.status >= 300:
                raise WebhookFailed(f"HTTP {response.status}: {await response.text()}")

    # --- serving ---

    @web.middleware
    async def _checks(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if request.headers.get("Accept") != ACCEPT:
            return _fail(400, f"Accept must be {ACCEPT}")
        partner, user = _tokens(request.headers.get("Authorization", ""))
        if not hmac.compare_digest(partner.encode(), self.partner_token.encode()):
            return _fail(401, "Partner authentication failed: wrong or missing token")
        company_id = request.match_info.get("company_id", "")
        if company_id != str(catalogue.SALON_ID):
            return _fail(404, "Филиал не найден")
        needs_user = request.path.startswith(("/api/v1/records/", "/api/v1/record/"))
        if needs_user and not hmac.compare_digest(user.encode(), self.user_token.encode()):
            return _fail(403, "Нет прав на просмотр записей: нужен токен пользователя")
        return await handler(request)

    async def _company(self, request: web.Request) -> web.Response:
        data = dict(self.company)
        if request.query.get("showBookforms") != "1":
            data.pop("bookforms", None)
        return web.json_response(envelope(data))

    async def _services(self, request: web.Request) -> web.Response:
        items = catalogue.services()
        return web.json_response(envelope(items, {"total_count": len(items)}))

    async def _staff(self, request: web.Request) -> web.Response:
        items = catalogue.staff()
        return web.json_response(envelope(items, {"total_count": len(items)}))

    async def _records(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            page, count = int(query.get("page", "1")), int(query.get("count", "50"))
            start = _day(query.get("start_date"))
            end = _day(query.get("end_date"))
            after = _moment(query.get("changed_after"), self.tz)
        except ValueError as exc:
            return _fail(422, f"Неверный параметр: {exc}")
        if page < 1 or count < 1:
            return _fail(422, "page и count должны быть положительными числами")
        with_deleted = query.get("with_deleted") in {"1", "true"}
        selected = [
            r
            for r in self.records.values()
            if (with_deleted or not r["deleted"])
            and (start is None or datetime.fromisoformat(r["date"]).date() >= start)
            and (end is None or datetime.fromisoformat(r["date"]).date() <= end)
            and (after is None or datetime.strptime(r["last_change_date"], CHANGE_FORMAT) >= after)
        ]
        selected.sort(key=lambda r: (r["datetime"], r["id"]))
        chunk = selected[(page - 1) * count : page * count]
        return web.json_response(envelope(chunk, {"page": page, "total_count": len(selected)}))

    async def _record(self, request: web.Request) -> web.Response:
        raw = request.match_info["record_id"]
        found = self.records.get(int(raw)) if raw.isdigit() else None
        if found is None:
            return _fail(404, "Запись не найдена")
        return web.json_response(envelope(found))


def _tokens(header: str) -> tuple[str, str]:
    """(partner, user) of `Authorization: Bearer <partner>, User <user>`; "" for what is
    missing."""
    partner = user = ""
    for part in header.split(","):
        scheme, _sep, token = part.strip().partition(" ")
        if scheme == "Bearer" and not partner:
            partner = token
        elif scheme == "User" and not user:
            user = token
    return partner, user


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _moment(value: str | None, tz: ZoneInfo) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)
