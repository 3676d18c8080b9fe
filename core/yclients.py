"""YClients REST client: one `httpx.AsyncClient` and one rate limiter per process.

Every salon goes through the same `YClientsClient`, so the limit YClients puts on our IP
(5 requests a second, 200 a minute) is kept by the process as a whole; each call has a class
(`Priority`) so that background syncs leave a share of it to pages a browser waits on. GETs
are retried with backoff on 429, 5xx and transport failures; a POST never is, because
YClients may have acted on it already (a PUT of one attendance and a DELETE are: repeating them
changes nothing). Tokens travel only in the Authorization header and
are never logged: a log line carries the method, path, status and duration.
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from types import TracebackType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)

ACCEPT = "application/vnd.yclients.v2+json"
JSONDict = dict[str, Any]

_RETRYABLE = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
_MESSAGE_LIMIT = 300


# --- errors -----------------------------------------------------------------------------------


class YClientsError(Exception):
    """A call to YClients failed; `str(error)` says what happened and what to do."""

    advice = "YClients refused the request"

    def __init__(
        self,
        method: str,
        path: str,
        status: int | None = None,
        api_message: str | None = None,
        *,
        advice: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.api_message = api_message
        if advice is not None:
            self.advice = advice
        parts = [f"YClients {method} {path}"]
        if status is not None:
            parts.append(f"HTTP {status}")
        if detail:
            parts.append(detail)
        text = ": ".join(parts) + f": {self.advice}"
        if api_message:
            text += f" (YClients says: {api_message})"
        super().__init__(text)


class Unauthorized(YClientsError):
    advice = (
        "YCLIENTS_PARTNER_TOKEN (or YCLIENTS_USER_TOKEN) was refused: check it has no spaces "
        "around it and no non-ASCII characters, is the partner token from the developer "
        "cabinet (not a user token), and that the user token is current (it changes when "
        "that user's password does)"
    )


class Forbidden(YClientsError):
    advice = (
        "the token lacks a right for this call — give the YClients user the rights in the "
        "salon's settings (Settings → Employees/Users → access rights) or check the app is "
        "installed and active in this salon"
    )


class AlreadyInstalled(Forbidden):
    advice = (
        "the salon has already installed this application; read salon_application() to "
        "confirm it is active"
    )


class NotFound(YClientsError):
    advice = (
        "no such salon, record or application in YClients: check the salon id (company_id), "
        "the record id, and that the app is installed in that salon"
    )


class ValidationFailed(YClientsError):
    advice = (
        "YClients rejected the request data; its message below names the field "
        "(a Salonbot bug or a salon setting)"
    )


class RateLimited(YClientsError):
    advice = (
        "YClients' rate limit (5 requests a second, 200 a minute per IP) was exceeded: "
        "lower YCLIENTS_RATE_LIMIT or retry later"
    )


class Unavailable(YClientsError):
    advice = (
        "YClients is unavailable or failing: retry later; if it lasts, check network access "
        "to YCLIENTS_API_URL"
    )


class BadResponse(YClientsError):
    advice = (
        "YClients answered something other than the expected JSON: check YCLIENTS_API_URL "
        "points at the API (https://api.yclients.com), not a web page or a proxy"
    )


_STATUS_ERRORS: dict[int, type[YClientsError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    422: ValidationFailed,
    429: RateLimited,
}

_FORBIDDEN_ADVICE = {
    "record": "the user token lacks the right to read records",
    "client": "the user token lacks the right to read clients",
    "staff": "the user token lacks the right to see staff",
    "services": "the user token lacks the right to see services",
}


def _forbidden_advice(path: str) -> str | None:
    if path.startswith("/marketplace/"):
        return (
            "the partner token may not act for this salon or application: check "
            "YCLIENTS_APP_ID, that the token is this application's, and that the salon "
            "installed the app"
        )
    for fragment, what in _FORBIDDEN_ADVICE.items():
        if fragment in path:
            return (
                f"{what} — give the user the rights in YClients settings (Settings → Users → "
                "access rights) or set YCLIENTS_USER_TOKEN to a user who has them"
            )
    return None


def _error_for(method: str, path: str, status: int, api_message: str | None) -> YClientsError:
    if status >= 500:
        return Unavailable(method, path, status, api_message)
    cls = _STATUS_ERRORS.get(status)
    if cls is Forbidden:
        return Forbidden(method, path, status, api_message, advice=_forbidden_advice(path))
    if cls is None:
        return YClientsError(method, path, status, api_message)
    return cls(method, path, status, api_message)


# --- dates --------------------------------------------------------------------------------------


def parse_yclients_datetime(value: str, tz: tzinfo | str | None = None) -> datetime:
    """An aware datetime from `2019-01-16T16:00:00+09:00`, `…+0900` or `…Z`.

    A value without an offset (the salon-local `date` field, `2019-01-16 16:00:00`) needs `tz`,
    the salon's `timezone_name`; without it that is a ValueError, not a silent guess.
    """
    text = value.strip()
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        if tz is None:
            raise ValueError(f"{value!r} has no UTC offset; pass the salon's timezone")
        parsed = parsed.replace(tzinfo=ZoneInfo(tz) if isinstance(tz, str) else tz)
    return parsed


def _format_changed(moment: datetime, tz: tzinfo | str | None) -> str:
    # YClients documents changed_after without an offset (`2016-02-23T12:00:00`); it reads it
    # as salon-local time, so an aware moment is moved to the salon's zone first.
    if moment.tzinfo is not None and tz is not None:
        moment = moment.astimezone(ZoneInfo(tz) if isinstance(tz, str) else tz)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _format_day(day: date | str) -> str:
    return day if isinstance(day, str) else day.strftime("%Y-%m-%d")


# --- rate limiting ----------------------------------------------------------------------------


class Priority(enum.StrEnum):
    """Who waits on a YClients call; decides how much of the shared limit it may take."""

    # A browser is waiting: the registration redirect, onboarding, activation. The default.
    INTERACTIVE = "interactive"
    # The scheduled sync (and what runs in its tick).
    CRON = "cron"
    # A sync somebody asked for over the API: may be repeated at will, so it gets least.
    BULK = "bulk"


# The most of the limit (per second and per minute) each background class may use. Bulk calls
# also count against the cron share, so cron and bulk together never take more than it: the
# rest is always left to interactive calls, and the difference to the cron.
SHARES: Mapping[Priority, float] = {Priority.CRON: 0.8, Priority.BULK: 0.5}


class _Window:
    """Spaces slots `1/per_second` apart and keeps at most `per_minute` in any 60 s."""

    def __init__(self, per_second: float, per_minute: int | None) -> None:
        self.per_second = per_second
        self.per_minute = per_minute
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._recent: deque[float] = deque()

    def reserve(self, now: float) -> float:
        slot = max(now, self._next)
        if self.per_minute and len(self._recent) >= self.per_minute:
            slot = max(slot, self._recent[0] + 60.0)
        self._next = slot + self._interval
        if self.per_minute:
            self._recent.append(slot)
            while len(self._recent) > self.per_minute:
                self._recent.popleft()
        return slot


class RateLimiter:
    """The process's share of YClients' limit: `per_second` spacing, `per_minute` in any 60 s.

    A call passes its class's windows in turn (bulk: the bulk share, then the cron share, then
    the whole limit; cron: the cron share, then the whole; interactive: the whole), so a flood
    of bulk calls queues at its own share and never reserves the slots interactive calls need.
    Each slot is reserved synchronously (one event loop: no lock needed) and waited for outside,
    so callers of one class queue in order.
    """

    def __init__(
        self,
        per_second: float,
        per_minute: int | None = None,
        *,
        shares: Mapping[Priority, float] = SHARES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive; pass no limiter to disable it")
        self.per_second = per_second
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        total = _Window(per_second, per_minute)
        chains: dict[Priority, list[_Window]] = {Priority.INTERACTIVE: [total]}
        outer = [total]
        for priority in (Priority.CRON, Priority.BULK):
            share = shares.get(priority, 1.0)
            if not 0 < share <= 1:
                raise ValueError(f"the {priority} share must be above 0 and at most 1")
            minute = max(1, int(per_minute * share)) if per_minute else None
            outer = [_Window(per_second * share, minute), *outer]
            chains[priority] = outer
        self._chains = chains

    async def acquire(self, priority: Priority = Priority.INTERACTIVE) -> None:
        for window in self._chains[priority]:
            now = self._clock()
            slot = window.reserve(now)
            if slot > now:
                await (self._sleep or asyncio.sleep)(slot - now)


# --- the client ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """YClients accepted the activation callback (any 2xx/3xx); its body is not read."""

    status: int
    location: str | None


class YClientsClient:
    """The process's YClients client. Build it once (`from_settings`) and share it."""

    def __init__(
        self,
        base_url: str,
        partner_token: str,
        user_token: str | None = None,
        *,
        rate_limit: float | None = 5.0,
        per_minute: int | None = 200,
        limiter: RateLimiter | None = None,
        timeout: float = 15.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        priority: Priority = Priority.INTERACTIVE,
    ) -> None:
        if not partner_token:
            raise ValueError("YCLIENTS_PARTNER_TOKEN is empty")
        for name, token in (("PARTNER", partner_token), ("USER", user_token or "")):
            if token != token.strip() or not token.isascii():
                raise ValueError(
                    f"YCLIENTS_{name}_TOKEN has spaces around it or non-ASCII characters; "
                    "copy it again as plain text"
                )
        self.base_url = base_url.rstrip("/")
        self._partner_token = partner_token
        self._user_token = user_token or None
        if limiter is None and rate_limit:
            limiter = RateLimiter(rate_limit, per_minute)
        self.limiter = limiter
        # The class this client's calls take in the limiter (`with_priority`).
        self.priority = priority
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": "salonbot"},
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> YClientsClient | None:
        """The client for these settings, or None without a partner token (the app announces
        which parts are off, once, in core.parts)."""
        if settings.yclients_partner_token is None:
            return None
        user = settings.yclients_user_token
        return cls(
            settings.yclients_api_url,
            settings.yclients_partner_token.get_secret_value(),
            user.get_secret_value() if user is not None else None,
            rate_limit=settings.yclients_rate_limit,
        )

    def with_user_token(self, user_token: str | None) -> YClientsClient:
        """The same connection pool and limiter, acting with one salon's own user token."""
        if not user_token or user_token == self._user_token:
            return self
        return self._sharing(user_token, self.priority)

    def with_priority(self, priority: Priority) -> YClientsClient:
        """The same connection pool and limiter, its calls counted as `priority`: background
        work (the cron, a sync asked for over the API) says so, interactive pages need not."""
        if priority is self.priority:
            return self
        return self._sharing(self._user_token, priority)

    def _sharing(self, user_token: str | None, priority: Priority) -> YClientsClient:
        return YClientsClient(
            self.base_url,
            self._partner_token,
            user_token,
            limiter=self.limiter,
            rate_limit=None,
            timeout=self.timeout,
            max_retries=self.max_retries,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            http_client=self._http,
            priority=priority,
        )

    def bounded(self, timeout: float, max_retries: int = 1) -> YClientsClient:
        """The same connection pool, limiter and tokens with a shorter bound, for calls made
        while a person's browser waits."""
        return YClientsClient(
            self.base_url,
            self._partner_token,
            self._user_token,
            limiter=self.limiter,
            rate_limit=None,
            timeout=min(timeout, self.timeout),
            max_retries=min(max_retries, self.max_retries),
            backoff_base=self.backoff_base,
            backoff_max=min(self.backoff_max, 1.0),
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return (
            f"YClientsClient({self.base_url!r}, user_token={self._user_token is not None}, "
            f"priority={self.priority.value!r})"
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> YClientsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- salon data ---

    async def company(self, company_id: int) -> JSONDict:
        """The salon (`id`, `title`, `timezone_name`, …) with its `bookforms`."""
        data, _ = await self._call(
            "GET", f"/api/v1/company/{company_id}", params={"showBookforms": 1}
        )
        return self._expect_dict("GET", f"/api/v1/company/{company_id}", data)

    async def services(self, company_id: int) -> list[JSONDict]:
        path = f"/api/v1/company/{company_id}/services"
        data, _ = await self._call("GET", path, user=True)
        return self._expect_list("GET", path, data)

    async def staff(self, company_id: int) -> list[JSONDict]:
        path = f"/api/v1/company/{company_id}/staff"
        data, _ = await self._call("GET", path, user=True)
        return self._expect_list("GET", path, data)

    async def record(self, company_id: int, record_id: int) -> JSONDict:
        path = f"/api/v1/record/{company_id}/{record_id}"
        data, _ = await self._call("GET", path, user=True)
        return self._expect_dict("GET", path, data)

    async def iter_record_pages(
        self,
        company_id: int,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        changed_after: datetime | None = None,
        changed_before: datetime | None = None,
        timezone: tzinfo | str | None = None,
        with_deleted: bool = False,
        count: int = 300,
    ) -> AsyncIterator[list[JSONDict]]:
        """Pages of records until a page shorter than `count` comes back.

        `changed_after`/`changed_before` are sent without an offset, as YClients documents
        them; pass the salon's `timezone` so an aware moment (a watermark read back from the
        database in UTC) is first moved to salon-local time.
        """
        path = f"/api/v1/records/{company_id}"
        params: dict[str, Any] = {"count": count}
        if start_date is not None:
            params["start_date"] = _format_day(start_date)
        if end_date is not None:
            params["end_date"] = _format_day(end_date)
        if changed_after is not None:
            params["changed_after"] = _format_changed(changed_after, timezone)
        if changed_before is not None:
            params["changed_before"] = _format_changed(changed_before, timezone)
        if with_deleted:
            params["with_deleted"] = 1
        page = 1
        previous_ids: list[Any] | None = None
        while True:
            data, _ = await self._call("GET", path, params={**params, "page": page}, user=True)
            records = self._expect_list("GET", path, data)
            ids = [item.get("id") for item in records]
            if records and ids == previous_ids:
                raise BadResponse(
                    "GET",
                    path,
                    detail=f"page {page} repeats page {page - 1}",
                    advice="YClients ignored the page parameter; paging stopped to avoid a loop",
                )
            if records:
                yield records
            if len(records) < count:
                return
            previous_ids = ids
            page += 1

    async def records(
        self,
        company_id: int,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        changed_after: datetime | None = None,
        changed_before: datetime | None = None,
        timezone: tzinfo | str | None = None,
        with_deleted: bool = False,
        count: int = 300,
    ) -> list[JSONDict]:
        """All matching records. A record that moved between pages while paging is kept once,
        in its latest form."""
        by_id: dict[Any, JSONDict] = {}
        async for page in self.iter_record_pages(
            company_id,
            start_date=start_date,
            end_date=end_date,
            changed_after=changed_after,
            changed_before=changed_before,
            timezone=timezone,
            with_deleted=with_deleted,
            count=count,
        ):
            for item in page:
                by_id[item.get("id", id(item))] = item
        return list(by_id.values())

    # --- a client's answer to a reminder ---

    async def set_attendance(self, company_id: int, record_id: int, attendance: int) -> JSONDict:
        """Set a record's `attendance` (2: the client confirmed; -1: cancelled where the token
        may not delete). YClients documents the full record as the PUT body, so the record is
        read and sent back with the one field changed. Both calls are retried like a GET: the
        same attendance set twice leaves the record as once."""
        record = await self.record(company_id, record_id)
        path = f"/api/v1/record/{company_id}/{record_id}"
        body = _record_body(record)
        body["attendance"] = attendance
        data, _ = await self._call("PUT", path, json_body=body, user=True, idempotent=True)
        return self._expect_dict("PUT", path, data)

    async def confirm_record(self, company_id: int, record_id: int) -> JSONDict:
        """The client said they will come: attendance 2."""
        return await self.set_attendance(company_id, record_id, 2)

    async def cancel_record(self, company_id: int, record_id: int) -> JSONDict:
        """Cancel without deleting (attendance -1): for a token that may not DELETE."""
        return await self.set_attendance(company_id, record_id, -1)

    async def delete_record(self, company_id: int, record_id: int) -> None:
        """Delete (cancel) a record: 204 without a body. Forbidden when the token may not
        delete; NotFound when it is gone already. Retried: deleting twice deletes once."""
        path = f"/api/v1/record/{company_id}/{record_id}"
        response = await self._send("DELETE", path, user=True, idempotent=True)
        if response.status_code >= 400:
            raise self._failure("DELETE", path, response)
        if response.status_code >= 300:
            raise BadResponse(
                "DELETE",
                path,
                response.status_code,
                detail=f"redirected to {response.headers.get('location')!r}",
                advice="check YCLIENTS_API_URL (https://api.yclients.com, no path after it)",
            )

    # --- marketplace ---

    async def marketplace_callback_redirect(
        self,
        salon_id: int,
        application_id: int,
        api_key: str,
        webhook_urls: Sequence[str],
    ) -> CallbackResult:
        """Tell YClients the salon's set-up is done. Any 2xx/3xx is success; the HTML page the
        301 points at is neither followed nor parsed. Never retried."""
        path = "/marketplace/partner/callback/redirect"
        body = {
            "salon_id": salon_id,
            "application_id": application_id,
            "api_key": api_key,
            "webhook_urls": list(webhook_urls),
        }
        response = await self._send("POST", path, json_body=body)
        if response.status_code < 400:
            return CallbackResult(response.status_code, response.headers.get("location"))
        error = self._failure("POST", path, response)
        if isinstance(error, Forbidden) and _says_already_installed(error.api_message):
            raise AlreadyInstalled("POST", path, 403, error.api_message)
        raise error

    async def salon_application(self, salon_id: int, application_id: int) -> JSONDict:
        """The app's installation in a salon (`{logs, payments, connection_status: {status,
        created_at}}`); NotFound when it is not installed."""
        path = f"/marketplace/salon/{salon_id}/application/{application_id}"
        data, _ = await self._call("GET", path)
        return self._expect_dict("GET", path, data)

    async def application_salons(
        self, application_id: int, *, page: int = 1, count: int = 50
    ) -> list[JSONDict]:
        """Salons that installed the application: a partner-token-only call, so it also tries
        the partner token before any salon exists. The items' fields are unconfirmed."""
        path = f"/marketplace/application/{application_id}/salons"
        data, _ = await self._call("GET", path, params={"page": page, "count": count})
        return self._expect_list("GET", path, data)

    # --- transport ---

    def _headers(self, user: bool) -> dict[str, str]:
        auth = f"Bearer {self._partner_token}"
        if user and self._user_token:
            auth += f", User {self._user_token}"
        return {"Accept": ACCEPT, "Content-Type": "application/json", "Authorization": auth}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        user: bool = False,
        idempotent: bool = False,
    ) -> tuple[Any, Any]:
        """(data, meta) of a successful call; a typed YClientsError otherwise."""
        response = await self._send(
            method, path, params=params, json_body=json_body, user=user, idempotent=idempotent
        )
        if response.status_code >= 400:
            raise self._failure(method, path, response)
        if response.status_code >= 300:
            raise BadResponse(
                method,
                path,
                response.status_code,
                detail=f"redirected to {response.headers.get('location')!r}",
                advice="check YCLIENTS_API_URL (https://api.yclients.com, no path after it)",
            )
        payload = _json_or_none(response)
        if not isinstance(payload, dict):
            raise BadResponse(method, path, response.status_code, detail="the body is not JSON")
        if payload.get("success") is True:
            return payload.get("data"), payload.get("meta")
        if payload.get("success") is False or "errors" in payload:
            code = _embedded_code(payload) or 422
            raise _error_for(method, path, code, _api_message(payload))
        raise BadResponse(
            method, path, response.status_code, detail="no {success, data, meta} envelope"
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        user: bool = False,
        idempotent: bool = False,
    ) -> httpx.Response:
        # A GET, and a write whose repeat changes nothing (`idempotent`), is retried.
        retryable = method == "GET" or idempotent
        attempts = 1 + (self.max_retries if retryable else 0)
        url = self.base_url + path
        for attempt in range(1, attempts + 1):
            if self.limiter is not None:
                await self.limiter.acquire(self.priority)
            started = time.monotonic()
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=self._headers(user),
                    timeout=self.timeout,
                    follow_redirects=False,
                )
            except httpx.TransportError as exc:
                failure = _transport_failure(method, path, exc, self.timeout)
                self._log(method, path, type(exc).__name__, started, logging.WARNING)
                if attempt == attempts:
                    raise failure from exc
                await self._backoff(method, path, attempt, attempts - 1, None)
                continue
            self._log(method, path, response.status_code, started, logging.DEBUG)
            if retryable and response.status_code in _RETRYABLE and attempt < attempts:
                await response.aclose()
                await self._backoff(method, path, attempt, attempts - 1, response)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _backoff(
        self, method: str, path: str, attempt: int, retries: int, response: httpx.Response | None
    ) -> None:
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
        if response is not None:
            delay = max(delay, min(self.backoff_max, _retry_after(response) or 0.0))
        log.warning(
            "YClients %s %s: retry %d/%d in %.2f s",
            method,
            path,
            attempt,
            retries,
            delay,
            extra={"method": method, "path": path, "attempt": attempt},
        )
        await asyncio.sleep(delay)

    @staticmethod
    def _log(method: str, path: str, status: int | str, started: float, level: int) -> None:
        duration_ms = round((time.monotonic() - started) * 1000)
        log.log(
            level,
            "YClients %s %s -> %s in %d ms",
            method,
            path,
            status,
            duration_ms,
            extra={"method": method, "path": path, "status": status, "duration_ms": duration_ms},
        )

    @staticmethod
    def _failure(method: str, path: str, response: httpx.Response) -> YClientsError:
        payload = _json_or_none(response)
        message = _api_message(payload) if isinstance(payload, dict) else None
        return _error_for(method, path, response.status_code, message)

    @staticmethod
    def _expect_dict(method: str, path: str, data: Any) -> JSONDict:
        if not isinstance(data, dict):
            raise BadResponse(method, path, detail=f"data is {type(data).__name__}, not an object")
        return data

    @staticmethod
    def _expect_list(method: str, path: str, data: Any) -> list[JSONDict]:
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise BadResponse(method, path, detail="data is not a list of objects")
        return data


def _record_body(record: Mapping[str, Any]) -> JSONDict:
    """The PUT body of a record as read: the fields YClients documents for a record's update."""
    staff = record.get("staff")
    staff_id = record.get("staff_id") or (staff.get("id") if isinstance(staff, dict) else None)
    client = record.get("client")
    body: JSONDict = {
        "staff_id": staff_id,
        "services": [
            {k: line.get(k) for k in ("id", "first_cost", "discount", "cost") if k in line}
            for line in record.get("services") or []
            if isinstance(line, dict)
        ],
        "datetime": record.get("datetime"),
        "seance_length": record.get("seance_length") or record.get("length"),
        "comment": record.get("comment") or "",
        "attendance": record.get("attendance", 0),
    }
    if isinstance(client, dict):
        body["client"] = {k: client.get(k) for k in ("phone", "name", "email") if k in client}
    return body


def _transport_failure(
    method: str, path: str, exc: httpx.TransportError, timeout: float
) -> Unavailable:
    if isinstance(exc, httpx.TimeoutException):
        return Unavailable(
            method,
            path,
            detail=f"no answer within {timeout:g} s",
            advice="YClients is slow or unreachable: retry later; check network access to "
            "YCLIENTS_API_URL",
        )
    if isinstance(exc, httpx.ConnectError):
        return Unavailable(
            method,
            path,
            detail=f"cannot connect ({exc})",
            advice="check YCLIENTS_API_URL and that this host can reach it (DNS, firewall)",
        )
    return Unavailable(method, path, detail=f"{type(exc).__name__}: {exc}")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _api_message(payload: Any) -> str | None:
    """YClients' own explanation, wherever this endpoint put it."""
    if not isinstance(payload, dict):
        return None
    candidates: list[Any] = []
    meta = payload.get("meta")
    if isinstance(meta, dict):
        candidates.append(meta.get("message"))
    errors = payload.get("errors")
    if isinstance(errors, dict):
        candidates.append(errors.get("message"))
        # Validation errors may come as {"field": ["problem", …]}.
        fields = [
            f"{key}: {'; '.join(map(str, value)) if isinstance(value, list) else value}"
            for key, value in errors.items()
            if key not in {"code", "message"}
        ]
        candidates.append(", ".join(fields))
    elif isinstance(errors, list | str):
        candidates.append("; ".join(map(str, errors)) if isinstance(errors, list) else errors)
    candidates.append(payload.get("message"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()[:_MESSAGE_LIMIT]
    return None


def _embedded_code(payload: JSONDict) -> int | None:
    errors = payload.get("errors")
    code = errors.get("code") if isinstance(errors, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


def _says_already_installed(message: str | None) -> bool:
    text = (message or "").lower()
    return "already" in text or "уже" in text


__all__ = [
    "ACCEPT",
    "SHARES",
    "AlreadyInstalled",
    "BadResponse",
    "CallbackResult",
    "Forbidden",
    "NotFound",
    "Priority",
    "RateLimited",
    "RateLimiter",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "YClientsClient",
    "YClientsError",
    "parse_yclients_datetime",
]
