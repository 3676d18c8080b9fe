"""A thin client of the MAX Bot API (shared/reference/max-bot-api.md), on aiohttp's client.

Why our own and not a library: the calls Salonbot makes are ten (me, updates, messages,
answers, uploads, subscriptions ×3), and the one sound library (maxapi) brings a second
dispatcher beside aiogram's and ignores 429; see pyproject.toml.

What it takes care of, so the adapter does not:

- **Trust.** MAX's certificate chain ends in the Russian Trusted Root CA, which neither
  certifi nor Debian carry: an https base URL gets the system's roots plus that CA
  (`russian_trusted_ca.pem`, shipped here). Verification is never turned off. Tests use plain
  http on loopback.
- **Auth.** `Authorization: <token>`, raw (no `Bearer`, no token in a URL a log could print).
- **Limits.** At most 2 sends or answers a second to one chat (MAX's rule): a caller over it
  waits its turn. A 429 `too.many.requests` is waited out (its `Retry-After`, else a doubling
  delay) and the call repeated, `Limits.retries` times: MAX did not act on it, so a repeat
  cannot deliver twice. Time and sleep come from an injected clock (core.backoff.Clock).
- **Errors** become exceptions a caller can act on: `MaxBlocked` (403 `chat.denied`: the
  person blocked or stopped the bot), `MaxNotFound`, `MaxUnauthorized` (401: a wrong token),
  `MaxRateLimited` (429 after the retries), `MaxUnavailable` (network, timeout, 5xx),
  `MaxRequestError` (any other refusal, a 200 with `success: false` included).
- **Images.** `POST /uploads?type=image` gives a URL; the PNG goes there as the multipart
  field `data` and comes back as a token; a message carrying it answered 400
  `attachment.not.ready` is sent again after a pause (`Limits.not_ready_*`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from core.backoff import Clock

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)

CA_BUNDLE = Path(__file__).with_name("russian_trusted_ca.pem")
# The update types the bot acts on (subscriptions and polling ask for these only).
UPDATE_TYPES = ("message_created", "message_callback", "bot_started", "bot_stopped")


class MaxError(Exception):
    """A MAX Bot API call failed; `status` is the HTTP status (0: no answer), `code` MAX's key."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message


class MaxUnauthorized(MaxError):
    """401 `verify.token`: MAX_BOT_TOKEN is wrong or revoked."""


class MaxBlocked(MaxError):
    """403 `chat.denied`: the person blocked or stopped the bot; nothing reaches them there."""


class MaxNotFound(MaxError):
    """404: no such chat or user."""


class MaxRateLimited(MaxError):
    """429 `too.many.requests`, still after the retries."""


class MaxUnavailable(MaxError):
    """The API did not answer (network, timeout) or failed (5xx): temporary."""


class MaxRequestError(MaxError):
    """Any other refusal (400, 403 `access.denied`, a 200 with `success: false`)."""


@dataclass(frozen=True, slots=True)
class Limits:
    # MAX allows at most 2 sends, edits, deletes or answers a second in one chat.
    per_chat: int = 2
    window: float = 1.0
    # How often a 429 is waited out before MaxRateLimited, and the first wait (doubling,
    # capped) when MAX sends no Retry-After.
    retries: int = 3
    first_wait: float = 1.0
    max_wait: float = 30.0
    # An image still being processed: how often and how long to wait before sending again.
    not_ready_retries: int = 5
    not_ready_wait: float = 1.0


def ssl_context(base_url: str) -> ssl.SSLContext | None:
    """The system's roots plus the Russian Trusted Root CA for an https API; None (plain
    http, tests on loopback) otherwise."""
    if not base_url.startswith("https://"):
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(CA_BUNDLE))
    return context


class ChatLimiter:
    """At most `per_chat` actions in any `window` seconds per chat: a caller over it sleeps
    until the oldest action of that chat leaves the window."""

    def __init__(self, limits: Limits, clock: Clock) -> None:
        self.limits = limits
        self.clock = clock
        self._sent: dict[int, deque[float]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def _now(self) -> float:
        return self.clock.now().timestamp()

    async def wait(self, chat: int) -> None:
        lock = self._locks.setdefault(chat, asyncio.Lock())
        async with lock:
            sent = self._sent.setdefault(chat, deque())
            while True:
                now = self._now()
                while sent and sent[0] <= now - self.limits.window:
                    sent.popleft()
                if len(sent) < self.limits.per_chat:
                    sent.append(now)
                    break
                await self.clock.sleep(sent[0] + self.limits.window - now)
        if len(self._sent) > 10_000:
            self._forget()

    def _forget(self) -> None:
        """Drop chats with nothing in the window (the dicts would grow with every person)."""
        horizon = self._now() - self.limits.window
        for chat in [c for c, sent in self._sent.items() if not sent or sent[-1] <= horizon]:
            lock = self._locks.get(chat)
            if lock is None or not lock.locked():
                self._sent.pop(chat, None)
                self._locks.pop(chat, None)


class MaxClient:
    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        limits: Limits | None = None,
        clock: Clock | None = None,
        timeout: float = 35.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limits = limits or Limits()
        self.clock = clock or Clock()
        self.limiter = ChatLimiter(self.limits, self.clock)
        self._token = token
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> MaxClient | None:
        """None while MAX_BOT_TOKEN is unset (core.parts says so once at start-up)."""
        if settings.max_bot_token is None:
            return None
        return cls(settings.max_bot_token.get_secret_value(), settings.max_api_url, clock=clock)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self._token},
                connector=aiohttp.TCPConnector(ssl=ssl_context(self.base_url) or False),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- the calls ---

    async def me(self) -> dict[str, Any]:
        return await self._call("GET", "/me")

    async def updates(
        self,
        marker: int | None = None,
        *,
        timeout: int = 30,  # noqa: ASYNC109 (the API's long-poll parameter)
        limit: int = 100,
        types: Sequence[str] = UPDATE_TYPES,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The next updates and the marker that commits them (pass it to the next call)."""
        params: dict[str, Any] = {"limit": limit, "timeout": timeout, "types": ",".join(types)}
        if marker is not None:
            params["marker"] = marker
        data = await self._call("GET", "/updates", params=params, wait=timeout + 10)
        found = data.get("updates")
        updates = [u for u in found if isinstance(u, dict)] if isinstance(found, list) else []
        next_marker = data.get("marker")
        return updates, next_marker if isinstance(next_marker, int) else marker

    async def send(self, user_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """Send a message to a person (their dialog with the bot); the Message MAX made."""
        await self.limiter.wait(user_id)
        for attempt in range(self.limits.not_ready_retries + 1):
            try:
                data = await self._call("POST", "/messages", params={"user_id": user_id}, json=body)
            except MaxRequestError as exc:
                if exc.code != "attachment.not.ready" or attempt == self.limits.not_ready_retries:
                    raise
                await self.clock.sleep(self.limits.not_ready_wait)
                continue
            message = data.get("message")
            return message if isinstance(message, dict) else {}
        raise MaxRequestError(400, "attachment.not.ready", "the image was never ready")

    async def answer(
        self,
        callback_id: str,
        user_id: int,
        *,
        notification: str | None = None,
        message: Mapping[str, Any] | None = None,
    ) -> None:
        """Answer a button press: a one-off toast and/or a new body for the pressed message."""
        body: dict[str, Any] = {}
        if notification:
            body["notification"] = notification
        if message is not None:
            body["message"] = dict(message)
        if not body:
            raise ValueError("an answer needs a notification or a message (MAX refuses empty)")
        await self.limiter.wait(user_id)
        await self._call("POST", "/answers", params={"callback_id": callback_id}, json=body)

    async def upload_image(self, png: bytes, filename: str) -> dict[str, Any]:
        """Upload a PNG; the attachment payload (`{"token": …}`) to send it with."""
        data = await self._call("POST", "/uploads", params={"type": "image"})
        url = data.get("url")
        if not isinstance(url, str) or not url:
            raise MaxRequestError(200, "upload.url", "POST /uploads gave no url")
        form = aiohttp.FormData()
        form.add_field("data", png, filename=filename, content_type="image/png")
        uploaded = await self._request("POST", url, data=form, wait=60)
        photos = uploaded.get("photos")
        if isinstance(photos, dict):
            for photo in photos.values():
                if isinstance(photo, dict) and isinstance(photo.get("token"), str):
                    return {"token": photo["token"]}
        if isinstance(uploaded.get("token"), str):
            return {"token": uploaded["token"]}
        raise MaxRequestError(200, "upload.token", "the upload gave no token")

    async def subscribe(self, url: str, secret: str, types: Sequence[str] = UPDATE_TYPES) -> None:
        body = {"url": url, "update_types": list(types), "secret": secret}
        await self._call("POST", "/subscriptions", json=body)

    async def subscriptions(self) -> list[str]:
        data = await self._call("GET", "/subscriptions")
        found = data.get("subscriptions")
        if not isinstance(found, list):
            return []
        return [str(s["url"]) for s in found if isinstance(s, dict) and s.get("url")]

    async def unsubscribe(self, url: str) -> None:
        await self._call("DELETE", "/subscriptions", params={"url": url})

    # --- transport ---

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        """One API call, a 429 waited out and repeated up to `Limits.retries` times."""
        url = self.base_url + path
        for attempt in range(self.limits.retries + 1):
            try:
                return await self._request(method, url, params=params, json=json, wait=wait)
            except _TooMany as busy:
                if attempt == self.limits.retries:
                    raise MaxRateLimited(429, busy.code, busy.message) from None
                delay = busy.retry_after
                if delay is None:
                    delay = self.limits.first_wait * 2**attempt
                delay = min(delay, self.limits.max_wait)
                log.info("MAX: %s %s rate-limited; again in %.1f s", method, path, delay)
                await self.clock.sleep(delay)
        raise RuntimeError("unreachable")

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=wait) if wait is not None else None
        try:
            async with self._http().request(
                method, url, params=params, json=json, data=data, timeout=timeout
            ) as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                retry_after = response.headers.get("Retry-After", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            name = type(exc).__name__
            raise MaxUnavailable(0, "network", f"{method} {_path(url)}: {name}: {exc}") from exc
        if not isinstance(body, dict):
            body = {}
        code = str(body.get("code") or body.get("error") or "")
        message = str(body.get("message") or "")
        if status == 200 and body.get("success") is False:
            raise MaxRequestError(status, code or "success.false", message)
        if status < 400:
            return body
        if status == 429:
            seconds = float(retry_after) if retry_after.isdigit() else None
            raise _TooMany(code or "too.many.requests", message, seconds)
        raise _error(status, code, message or f"{method} {_path(url)} answered {status}")


class _TooMany(Exception):
    def __init__(self, code: str, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def _error(status: int, code: str, message: str) -> MaxError:
    if status == 401:
        return MaxUnauthorized(status, code, message)
    if status == 403 and (code == "chat.denied" or "dialog.suspended" in message):
        return MaxBlocked(status, code, message)
    if status == 404:
        return MaxNotFound(status, code, message)
    if status >= 500:
        return MaxUnavailable(status, code, message)
    return MaxRequestError(status, code, message)


def _path(url: str) -> str:
    """The URL without its query (an upload URL's query may hold a one-off key)."""
    return url.split("?", 1)[0]
