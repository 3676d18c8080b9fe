"""A YClients emulator on loopback: the paths, envelopes and token checks of the real API.

Shapes follow shared/reference/yclients-api.md. State is plain dicts a test can set or change
with the helpers; faults (failures, slowness, malformed bodies, a rate limit) are switched on
per test. Where the real behaviour is unconfirmed the emulator picks the strictest reading
and says so: `changed_after` without an offset is salon-local time, records need a user token.

    async with YClientsEmulator() as yc:
        company = yc.add_company(title="Salon")
        record = yc.add_record(company["id"], client={"name": "Anna", "phone": "79991234567"})
        client = YClientsClient(yc.url, yc.partner_token, yc.user_token)
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

ACCEPT = "application/vnd.yclients.v2+json"
PARTNER_TOKEN = "partner-token-0123456789"
USER_TOKEN = "user-token-abcdef0123"
DEFAULT_TZ = "Europe/Moscow"
ALREADY_INSTALLED = "the user already installed this application"
CHANGE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # `2026-11-20T12:00:00+0300`, no colon, as YClients does

JSONDict = dict[str, Any]
BODY = web.RequestKey("yclients_body", object)


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int
    message: str
    errors_form: bool = False
    path_prefix: str | None = None


@dataclass(slots=True)
class _Slowness:
    seconds: float
    remaining: int | None


@dataclass(slots=True)
class _Auth:
    partner: str | None = None
    user: str | None = None
    extra: list[str] = field(default_factory=list)


def envelope(data: Any, meta: Any = None) -> JSONDict:
    return {"success": True, "data": data, "meta": [] if meta is None else meta}


def failure(message: str) -> JSONDict:
    return {"success": False, "data": None, "meta": {"message": message}}


class YClientsEmulator:
    """The YClients REST and marketplace API, in memory, on `127.0.0.1:<free port>`."""

    def __init__(
        self,
        *,
        partner_token: str = PARTNER_TOKEN,
        user_token: str = USER_TOKEN,
        host: str = "127.0.0.1",
    ) -> None:
        self.partner_token = partner_token
        self.user_token = user_token
        self.host = host
        self.companies: dict[int, JSONDict] = {}
        self.services: dict[int, list[JSONDict]] = {}
        self.staff: dict[int, list[JSONDict]] = {}
        self.records: dict[int, dict[int, JSONDict]] = {}
        # (salon_id, application_id) -> installation, as GET …/application/{aid} shows it.
        self.applications: dict[tuple[int, int], JSONDict] = {}
        self.callbacks: list[JSONDict] = []
        # Application ids registered to this partner (besides those installed somewhere):
        # GET /marketplace/application/{aid}/salons answers 404 for any other id.
        self.owned_applications: set[int] = set()
        # Valid user tokens of users without the right to see records (403 on records).
        self.without_record_rights: set[str] = set()
        # What a token may not do in a salon: (salon id, user token) -> methods refused with
        # 403 on its records and visits ("DELETE" for an integration that may only set the
        # attendance, as one integrator saw for months). `forbid()` fills it.
        self.forbidden: dict[tuple[int, str], set[str]] = {}
        # Every write to a record or a visit, in order: (method, path, body).
        self.writes: list[tuple[str, str, Any]] = []
        self.requests: list[SeenRequest] = []
        self.calls: Counter[str] = Counter()
        # Unconfirmed whether a marketplace partner token alone may read records; strict here.
        self.require_user_token_for_records = True
        # Without the v2 Accept header the answer is 400 here; what YClients does is unconfirmed.
        self.strict_accept = True
        # A fixed "now" for create/last_change dates; None is the wall clock.
        self.now: datetime | None = None
        self._ids = itertools.count(1_000_001)
        self._faults: list[_Fault] = []
        self._malformed = 0
        self._slowness: _Slowness | None = None
        # While set and not yet released, every request waits for it (a test's "slow YClients"
        # that needs no sleeping): `gate = asyncio.Event()`, later `gate.set()`.
        self.gate: asyncio.Event | None = None
        self._callback_failure: tuple[int, str] | None = None
        self._lost_callback_answers = 0
        self._rate_limit: int | None = None
        self._recent: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # --- lifecycle ---

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self._port}"

    async def start(self) -> YClientsEmulator:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/v1/company/{company_id}", self._company)
        app.router.add_get("/api/v1/company/{company_id}/services", self._services)
        app.router.add_get("/api/v1/company/{company_id}/staff", self._staff)
        app.router.add_get("/api/v1/records/{company_id}", self._records)
        app.router.add_get("/api/v1/record/{company_id}/{record_id}", self._record)
        app.router.add_put("/api/v1/record/{company_id}/{record_id}", self._put_record)
        app.router.add_delete("/api/v1/record/{company_id}/{record_id}", self._delete_record)
        app.router.add_get("/api/v1/visits/{visit_id}", self._visit)
        app.router.add_put("/api/v1/visits/{visit_id}/{record_id}", self._put_visit)
        app.router.add_post("/marketplace/partner/callback/redirect", self._callback_redirect)
        app.router.add_get(
            "/marketplace/salon/{salon_id}/application/{application_id}", self._application
        )
        app.router.add_get(
            "/marketplace/application/{application_id}/salons", self._application_salons
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> YClientsEmulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- state helpers ---

    def clock(self) -> datetime:
        return self.now or datetime.now(ZoneInfo(DEFAULT_TZ)).replace(microsecond=0)

    def add_company(
        self,
        company_id: int | None = None,
        *,
        title: str = "Салон красоты",
        timezone_name: str = DEFAULT_TZ,
        bookforms: list[JSONDict] | None = None,
        **fields: Any,
    ) -> JSONDict:
        company_id = company_id or next(self._ids)
        if bookforms is None:
            form = 100_000 + company_id % 100_000
            bookforms = [
                {
                    "id": form,
                    "title": "Онлайн-запись",
                    "is_default": 1,
                    "url": f"https://n{form}.yclients.com/",
                }
            ]
        company = {
            "id": company_id,
            "title": title,
            "timezone_name": timezone_name,
            "timezone": 3,
            "address": "Москва, ул. Тверская, 1",
            "phone": "+7 999 000-00-00",
            "bookforms": bookforms,
            **fields,
        }
        self.companies[company_id] = company
        self.services.setdefault(company_id, [])
        self.staff.setdefault(company_id, [])
        self.records.setdefault(company_id, {})
        return company

    def add_service(self, company_id: int, **fields: Any) -> JSONDict:
        self._ensure_company(company_id)
        service = {
            "id": next(self._ids),
            "title": "Стрижка",
            "category_id": 1,
            "price_min": 1500,
            "price_max": 1500,
            "active": 1,
            "staff": [],
            **fields,
        }
        self.services[company_id].append(service)
        return service

    def add_staff(self, company_id: int, **fields: Any) -> JSONDict:
        self._ensure_company(company_id)
        member = {
            "id": next(self._ids),
            "name": "Мария",
            "specialization": "парикмахер",
            "position": {"id": 1, "title": "Мастер"},
            "fired": 0,
            "hidden": 0,
            **fields,
        }
        self.staff[company_id].append(member)
        return member

    def add_record(self, company_id: int, **fields: Any) -> JSONDict:
        """A record shaped as the API returns it; any field can be given. `datetime` may be a
        `datetime` (naive = salon-local) or an ISO string; `date` follows it."""
        company = self._ensure_company(company_id)
        tz = ZoneInfo(company["timezone_name"])
        when = fields.pop("datetime", None)
        if when is None:
            tomorrow = self.clock().astimezone(tz) + timedelta(days=1)
            when = tomorrow.replace(hour=12, minute=0, second=0)
        elif isinstance(when, str):
            when = datetime.fromisoformat(when)
        if when.tzinfo is None:
            when = when.replace(tzinfo=tz)
        when = when.astimezone(tz)
        staff = self.staff[company_id][0] if self.staff[company_id] else {"id": 1, "name": "Мария"}
        length = fields.get("seance_length", 3600)
        stamp = self.clock().strftime(CHANGE_FORMAT)
        record_id = fields.pop("id", None) or next(self._ids)
        record = {
            "id": record_id,
            "company_id": company_id,
            "staff_id": staff["id"],
            "staff": {"id": staff["id"], "name": staff["name"]},
            "services": [
                {
                    "id": 1,
                    "title": "Стрижка",
                    "cost": 1500,
                    "first_cost": 1500,
                    "discount": 0,
                    "amount": 1,
                }
            ],
            "client": {
                "id": next(self._ids),
                "name": "Анна",
                "phone": "79991234567",
                "email": "",
            },
            "datetime": when.isoformat(),
            "date": when.strftime("%Y-%m-%d %H:%M:%S"),
            "seance_length": length,
            "length": length,
            "comment": "",
            "attendance": 0,
            "visit_attendance": 0,
            "deleted": False,
            "paid_full": 0,
            "online": True,
            "create_date": stamp,
            "last_change_date": stamp,
            "api_id": "",
            # One visit per record unless a test groups records (`visit_id=` the same).
            "visit_id": record_id + 500_000_000,
        }
        record.update(fields)
        if "staff_id" in fields and "staff" not in fields:
            record["staff"] = {"id": fields["staff_id"], "name": staff["name"]}
        self.records[company_id][record_id] = record
        return record

    def update_record(self, company_id: int, record_id: int, **changes: Any) -> JSONDict:
        """Change a record as a salon admin would; `last_change_date` always moves forward."""
        record = self.records[company_id][record_id]
        record.update(changes)
        if "datetime" in changes:
            tz = ZoneInfo(self.companies[company_id]["timezone_name"])
            when = datetime.fromisoformat(record["datetime"]).astimezone(tz)
            record["date"] = when.strftime("%Y-%m-%d %H:%M:%S")
        if "last_change_date" not in changes:
            previous = datetime.strptime(record["last_change_date"], CHANGE_FORMAT)
            stamp = max(self.clock(), previous + timedelta(seconds=1))
            record["last_change_date"] = stamp.strftime(CHANGE_FORMAT)
        return record

    def delete_record(self, company_id: int, record_id: int) -> JSONDict:
        return self.update_record(company_id, record_id, deleted=True)

    def install(
        self, salon_id: int, application_id: int, status: str = "active", **fields: Any
    ) -> JSONDict:
        """The app's installation in a salon; `status` is `pending` (the owner pressed
        Connect), `active` or `uninstalled`."""
        installation = {
            "salon_id": salon_id,
            "application_id": application_id,
            "status": status,
            "created_at": self.clock().isoformat(timespec="seconds"),
            "webhook_urls": [],
            "api_key": None,
            "logs": [],
            "payments": [],
            **fields,
        }
        self.applications[(salon_id, application_id)] = installation
        return installation

    def press_connect(self, salon_id: int, application_id: int) -> None:
        """The salon's owner presses Connect in the Marketplace: the installation is `pending`
        until the partner's activation callback."""
        current = self.applications.get((salon_id, application_id))
        if current is None or current["status"] == "uninstalled":
            self.install(salon_id, application_id, status="pending")

    def set_application_status(self, salon_id: int, application_id: int, status: str) -> None:
        """`uninstalled`, `pending`, back to `active`: what the partner would read next."""
        installation = self.applications[(salon_id, application_id)]
        installation["logs"].append(
            {
                "changed_at": self.clock().isoformat(timespec="seconds"),
                "status_from": installation["status"],
                "status_to": status,
                "source": "emulator",
            }
        )
        installation["status"] = status

    def uninstall(self, salon_id: int, application_id: int) -> None:
        self.applications.pop((salon_id, application_id), None)

    @staticmethod
    def application_answer(installation: Mapping[str, Any]) -> JSONDict:
        """`data` of GET …/application/{aid} in the documented shape: `connection_status` is an
        object."""
        return {
            "logs": list(installation["logs"]),
            "payments": list(installation["payments"]),
            "connection_status": {
                "status": installation["status"],
                "created_at": installation["created_at"],
            },
        }

    def forbid(self, company_id: int, *methods: str, token: str | None = None) -> None:
        """The user token (ours by default) may not `methods` ("DELETE", "PUT") on the salon's
        records and visits: 403, as YClients answers a user without the right."""
        self.forbidden.setdefault((company_id, token or self.user_token), set()).update(methods)

    def writes_to(self, record_id: int, method: str | None = None) -> list[tuple[str, Any]]:
        """(method, body) of each write that reached the record (or its visit)."""
        return [
            (m, body)
            for m, path, body in self.writes
            if path.rstrip("/").endswith(f"/{record_id}") and (method is None or m == method)
        ]

    def calls_to(self, path: str, method: str | None = None) -> int:
        if method is None:
            return self.calls[path]
        return sum(1 for r in self.requests if r.path == path and r.method == method)

    def _ensure_company(self, company_id: int) -> JSONDict:
        return self.companies.get(company_id) or self.add_company(company_id)

    # --- faults ---

    def fail_next(
        self,
        n: int,
        status: int = 500,
        *,
        message: str | None = None,
        errors_form: bool = False,
        path_prefix: str | None = None,
    ) -> None:
        """The next `n` requests (under `path_prefix`, if given) answer `status`; with
        `errors_form` the body is `{"errors": {"code", "message"}}` instead of the envelope."""
        text = message or {
            429: "Слишком много запросов",
            500: "Внутренняя ошибка сервера",
        }.get(status, f"Ошибка {status}")
        self._faults.append(_Fault(n, status, text, errors_form, path_prefix))

    def slow(self, seconds: float, n: int | None = None) -> None:
        """Delay answers by `seconds` (the next `n` only, if given); `slow(0)` ends it."""
        self._slowness = _Slowness(seconds, n) if seconds > 0 else None

    def malformed_next(self, n: int) -> None:
        """The next `n` requests get 200 with a body that is not JSON."""
        self._malformed += n

    def rate_limit(self, per_second: int | None) -> None:
        """Answer 429 while more than `per_second` requests came in the last second."""
        self._rate_limit = per_second
        self._recent.clear()

    def fail_callback(self, status: int | None = 422, message: str = "Неверные данные") -> None:
        """Make the activation callback answer `status`; None restores normal behaviour."""
        self._callback_failure = None if status is None else (status, message)

    def lose_callback_answers(self, n: int = 1) -> None:
        """The next `n` activation callbacks are acted on (the app is installed with the key),
        but their answer is lost on the way back: the partner sees a 504."""
        self._lost_callback_answers = n

    def reset_faults(self) -> None:
        self._faults.clear()
        self._malformed = 0
        self._slowness = None
        self._callback_failure = None
        self.rate_limit(None)

    # --- webhooks to the app ---

    @staticmethod
    def webhook_for_record(record: Mapping[str, Any], status: str = "update") -> JSONDict:
        return {
            "company_id": record["company_id"],
            "resource": "record",
            "resource_id": record["id"],
            "status": status,
            "data": copy.deepcopy(dict(record)),
        }

    async def post_webhook(
        self,
        url: str,
        company_id: int,
        resource: str,
        resource_id: int,
        status: str,
        data: Mapping[str, Any],
    ) -> tuple[int, str]:
        """POST a YClients entity event to the app, as YClients would; (status, body)."""
        payload = {
            "company_id": company_id,
            "resource": resource,
            "resource_id": resource_id,
            "status": status,
            "data": dict(data),
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=10)) as resp,
        ):
            return resp.status, await resp.text()

    async def post_record_webhook(
        self, url: str, record: Mapping[str, Any], status: str = "update"
    ) -> tuple[int, str]:
        event = self.webhook_for_record(record, status)
        return await self.post_webhook(
            url, event["company_id"], "record", event["resource_id"], status, event["data"]
        )

    # --- serving ---

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.requests.append(
            SeenRequest(
                request.method, request.path, dict(request.query), dict(request.headers), body
            )
        )
        self.calls[request.path] += 1
        request[BODY] = body

        if self.gate is not None:
            await self.gate.wait()
        if self._slowness is not None:
            delay = self._slowness.seconds
            if self._slowness.remaining is not None:
                self._slowness.remaining -= 1
                if self._slowness.remaining <= 0:
                    self._slowness = None
            await asyncio.sleep(delay)
        if self._rate_limit is not None:
            now = time.monotonic()
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self._rate_limit:
                return web.json_response(failure("Превышен лимит запросов"), status=429)
            self._recent.append(now)
        for fault in self._faults:
            if fault.path_prefix is None or request.path.startswith(fault.path_prefix):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                if fault.errors_form:
                    payload: JSONDict = {
                        "errors": {"code": fault.status, "message": fault.message},
                        "meta": {"message": fault.message},
                    }
                else:
                    payload = failure(fault.message)
                return web.json_response(payload, status=fault.status)
        if self._malformed:
            self._malformed -= 1
            return web.Response(
                status=200, text='{"success": true, "data": [', content_type="application/json"
            )
        if self.strict_accept and request.headers.get("Accept") != ACCEPT:
            return _fail(400, f"Accept must be {ACCEPT}")
        auth = _parse_auth(request.headers.get("Authorization", ""))
        if auth.extra or auth.partner != self.partner_token:
            return _fail(401, "Partner authentication failed: wrong or missing token")
        return await handler(request)

    def _check_user(self, request: web.Request) -> web.Response | None:
        auth = _parse_auth(request.headers.get("Authorization", ""))
        if not self.require_user_token_for_records and auth.user is None:
            return None
        if auth.user is None or auth.user in self.without_record_rights:
            return _fail(403, "Нет прав на просмотр записей: нужен токен пользователя")
        if auth.user != self.user_token:
            # A wrong or outdated user token is an authentication failure, as a partner's is.
            return _fail(401, "User authentication failed: wrong or outdated user token")
        return None

    def _company_or_404(self, request: web.Request) -> JSONDict | web.Response:
        company_id = _int(request.match_info["company_id"])
        company = self.companies.get(company_id) if company_id is not None else None
        if company is None:
            return _fail(404, "Филиал не найден")
        return company

    async def _company(self, request: web.Request) -> web.Response:
        company = self._company_or_404(request)
        if isinstance(company, web.Response):
            return company
        data = dict(company)
        if request.query.get("showBookforms") != "1":
            data.pop("bookforms", None)
        return web.json_response(envelope(data))

    async def _services(self, request: web.Request) -> web.Response:
        company = self._company_or_404(request)
        if isinstance(company, web.Response):
            return company
        items = self.services[company["id"]]
        return web.json_response(envelope(items, {"total_count": len(items)}))

    async def _staff(self, request: web.Request) -> web.Response:
        company = self._company_or_404(request)
        if isinstance(company, web.Response):
            return company
        items = self.staff[company["id"]]
        return web.json_response(envelope(items, {"total_count": len(items)}))

    async def _records(self, request: web.Request) -> web.Response:
        company = self._company_or_404(request)
        if isinstance(company, web.Response):
            return company
        refused = self._check_user(request)
        if refused is not None:
            return refused
        tz = ZoneInfo(company["timezone_name"])
        query = request.query
        page, count = _int(query.get("page", "1")), _int(query.get("count", "50"))
        if page is None or count is None or page < 1 or count < 1:
            return _fail(422, "page и count должны быть положительными числами")
        try:
            start = _day(query.get("start_date"))
            end = _day(query.get("end_date"))
            after = _moment(query.get("changed_after"), tz)
            before = _moment(query.get("changed_before"), tz)
        except ValueError as exc:
            return _fail(422, f"Неверный формат даты: {exc}")
        with_deleted = query.get("with_deleted") in {"1", "true"}
        selected = []
        for record in self.records[company["id"]].values():
            visit = datetime.fromisoformat(record["date"]).date()
            changed = datetime.strptime(record["last_change_date"], CHANGE_FORMAT)
            if record.get("deleted") and not with_deleted:
                continue
            if (start and visit < start) or (end and visit > end):
                continue
            if (after and changed < after) or (before and changed > before):
                continue
            selected.append(record)
        selected.sort(key=lambda r: (r["datetime"], r["id"]))
        chunk = selected[(page - 1) * count : page * count]
        return web.json_response(envelope(chunk, {"page": page, "total_count": len(selected)}))

    async def _record(self, request: web.Request) -> web.Response:
        company = self._company_or_404(request)
        if isinstance(company, web.Response):
            return company
        refused = self._check_user(request)
        if refused is not None:
            return refused
        record_id = _int(request.match_info["record_id"])
        record = self.records[company["id"]].get(record_id) if record_id is not None else None
        if record is None:
            return _fail(404, "Запись не найдена")
        return web.json_response(envelope(record))

    def _writable(self, request: web.Request, company_id: int) -> web.Response | None:
        """A user token with the right to change this salon's records, or the refusal."""
        refused = self._check_user(request)
        if refused is not None:
            return refused
        auth = _parse_auth(request.headers.get("Authorization", ""))
        if request.method in self.forbidden.get((company_id, auth.user or ""), set()):
            return _fail(403, "Нет прав на изменение записей")
        return None

    def _found_record(self, request: web.Request) -> tuple[JSONDict, JSONDict] | web.Response:
        company = self._company_or_404(request)
        if isinstance(company, web.Response):
            return company
        refused = self._writable(request, company["id"])
        if refused is not None:
            return refused
        record_id = _int(request.match_info["record_id"])
        record = self.records[company["id"]].get(record_id) if record_id is not None else None
        if record is None or record.get("deleted"):
            return _fail(404, "Запись не найдена")
        return company, record

    async def _put_record(self, request: web.Request) -> web.Response:
        """A record's update: the documented body is the whole record; what is sent is kept.
        `attendance` is checked against the values YClients knows."""
        found = self._found_record(request)
        if isinstance(found, web.Response):
            return found
        company, record = found
        body = request[BODY]
        if not isinstance(body, dict):
            return _fail(400, "Тело запроса должно быть JSON")
        if "attendance" in body and body["attendance"] not in (-1, 0, 1, 2):
            return _fail(422, "attendance: допустимые значения -1, 0, 1, 2")
        self.writes.append(("PUT", request.path, body))
        changes = {k: v for k, v in body.items() if k in ("attendance", "comment", "datetime")}
        if "attendance" in changes:
            changes["visit_attendance"] = changes["attendance"]
        updated = self.update_record(company["id"], record["id"], **changes)
        return web.json_response(envelope(updated))

    async def _delete_record(self, request: web.Request) -> web.Response:
        found = self._found_record(request)
        if isinstance(found, web.Response):
            return found
        company, record = found
        self.writes.append(("DELETE", request.path, None))
        self.delete_record(company["id"], record["id"])
        return web.Response(status=204)

    def _record_of_visit(self, visit_id: int | None) -> JSONDict | None:
        for records in self.records.values():
            for record in records.values():
                if record.get("visit_id") == visit_id and not record.get("deleted"):
                    return record
        return None

    async def _visit(self, request: web.Request) -> web.Response:
        record = self._record_of_visit(_int(request.match_info["visit_id"]))
        if record is None:
            return _fail(404, "Визит не найден")
        refused = self._check_user(request)
        if refused is not None:
            return refused
        visit = {
            "id": record["visit_id"],
            "attendance": record["visit_attendance"],
            "datetime": record["datetime"],
            "records": [
                r
                for r in self.records[record["company_id"]].values()
                if r.get("visit_id") == record["visit_id"]
            ],
        }
        return web.json_response(envelope(visit))

    async def _put_visit(self, request: web.Request) -> web.Response:
        """A visit's status (`attendance`, `comment`) for one of its records."""
        record = self._record_of_visit(_int(request.match_info["visit_id"]))
        record_id = _int(request.match_info["record_id"])
        if record is None or record_id not in self.records[record["company_id"]]:
            return _fail(404, "Визит не найден")
        refused = self._writable(request, record["company_id"])
        if refused is not None:
            return refused
        body = request[BODY]
        if not isinstance(body, dict) or body.get("attendance") not in (-1, 0, 1, 2):
            return _fail(422, "attendance: допустимые значения -1, 0, 1, 2")
        self.writes.append(("PUT", request.path, body))
        for other in self.records[record["company_id"]].values():
            if other.get("visit_id") == record["visit_id"]:
                self.update_record(
                    other["company_id"],
                    other["id"],
                    attendance=body["attendance"],
                    visit_attendance=body["attendance"],
                )
        return web.json_response(envelope(None))

    async def _callback_redirect(self, request: web.Request) -> web.Response:
        body = request[BODY]
        self.callbacks.append(body if isinstance(body, dict) else {"raw": body})
        if self._callback_failure is not None:
            status, message = self._callback_failure
            return _fail(status, message)
        if not isinstance(body, dict):
            return _fail(400, "Тело запроса должно быть JSON")
        missing = [k for k in ("salon_id", "application_id", "api_key") if not body.get(k)]
        urls = body.get("webhook_urls", [])
        if missing or not isinstance(urls, list):
            return _fail(422, f"Не заполнены поля: {', '.join(missing) or 'webhook_urls'}")
        key = (body["salon_id"], body["application_id"])
        current = self.applications.get(key)
        if current is not None and current["status"] not in ("uninstalled", "pending"):
            return _fail(403, ALREADY_INSTALLED)
        self.install(*key, webhook_urls=urls, api_key=body["api_key"])
        if self._lost_callback_answers > 0:
            self._lost_callback_answers -= 1
            return web.Response(status=504, text="Gateway Timeout")
        location = f"https://yclients.com/appstore/{key[0]}/applications/{key[1]}/installed"
        return web.Response(
            status=301,
            headers={"Location": location},
            text=f'<html><body>Redirecting to <a href="{location}">{location}</a></body></html>',
            content_type="text/html",
        )

    async def _application(self, request: web.Request) -> web.Response:
        salon_id = _int(request.match_info["salon_id"])
        application_id = _int(request.match_info["application_id"])
        installation = self.applications.get((salon_id or 0, application_id or 0))
        if installation is None:
            return _fail(404, "Приложение не подключено к филиалу")
        return web.json_response(envelope(self.application_answer(installation)))

    async def _application_salons(self, request: web.Request) -> web.Response:
        application_id = _int(request.match_info["application_id"])
        installed = sorted(salon for salon, aid in self.applications if aid == application_id)
        if application_id not in self.owned_applications and not installed:
            return _fail(404, "Приложение не найдено")
        page, count = _int(request.query.get("page", "1")), _int(request.query.get("count", "50"))
        if page is None or count is None or page < 1 or count < 1:
            return _fail(422, "page и count должны быть положительными числами")
        items = [
            {"id": salon, "title": self.companies.get(salon, {}).get("title", "")}
            for salon in installed
        ]
        chunk = items[(page - 1) * count : page * count]
        return web.json_response(envelope(chunk, {"total_count": len(items)}))


def _fail(status: int, message: str) -> web.Response:
    return web.json_response(failure(message), status=status)


def _parse_auth(header: str) -> _Auth:
    auth = _Auth()
    for part in header.split(","):
        scheme, _, token = part.strip().partition(" ")
        if scheme == "Bearer" and auth.partner is None:
            auth.partner = token
        elif scheme == "User" and auth.user is None:
            auth.user = token
        elif part.strip():
            auth.extra.append(scheme)
    return auth


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _moment(value: str | None, tz: ZoneInfo) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)
