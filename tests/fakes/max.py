"""A fake MAX Bot API on loopback, and the people who write to the bot
(shared/reference/max-bot-api.md).

* `FakeMaxAPI` serves the paths Salonbot calls: `GET /me`, `GET /updates` (long-polls a queue
  the test pushes to; `marker` commits what came before), `POST /messages?user_id=`,
  `POST /answers?callback_id=`, `POST /uploads?type=image` and the upload URL it hands out
  (multipart field `data` → a token), `GET|POST|DELETE /subscriptions`. It checks the raw
  `Authorization: <token>` header (401 `verify.token`, a `Bearer` one included), answers 403
  `chat.denied` to a user in `blocked`, 429 `too.many.requests` while `busy` counts down, and
  400 `attachment.not.ready` to the first send of a fresh image when `slow_images` is on.
  Every call is recorded with its query, JSON body and files.
* `MaxUser` builds the updates a person produces: Start through a deep link, text, a shared
  contact (with a hash that verifies, one that does not, or none), a pressed button, Stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from core.max.contact import contact_hash

TOKEN = "max-test-token-0123456789abcdef"
BOT_USER_ID = 900_000_001
BOT_USERNAME = "salonbot_max_bot"
ME = {
    "user_id": BOT_USER_ID,
    "first_name": "Salonbot",
    "username": BOT_USERNAME,
    "is_bot": True,
    "name": "Salonbot",
    "description": "",
    "commands": [],
}

_seq = itertools.count(1)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class MaxUser:
    """A MAX user in a dialog with the bot (chat id = user id + a constant, as MAX's differ)."""

    user_id: int
    first_name: str = "Анна"
    locale: str | None = "ru"

    @property
    def chat_id(self) -> int:
        return self.user_id + 7_000_000_000

    def user(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "first_name": self.first_name,
            "name": self.first_name,
            "is_bot": False,
            "last_activity_time": _now_ms(),
        }

    def _update(self, kind: str, **fields: Any) -> dict[str, Any]:
        update: dict[str, Any] = {"update_type": kind, "timestamp": _now_ms(), **fields}
        if self.locale:
            update["user_locale"] = self.locale
        return update

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        n = next(_seq)
        return self._update(
            "message_created",
            message={
                "sender": self.user(),
                "recipient": {
                    "chat_id": self.chat_id,
                    "chat_type": "dialog",
                    "user_id": BOT_USER_ID,
                },
                "timestamp": _now_ms(),
                "body": {"mid": f"mid.{self.user_id}.{n}", "seq": n, **body},
            },
        )

    def starts(self, payload: str | None = None) -> dict[str, Any]:
        """Start pressed, through a deep link `https://max.ru/<bot>?start=<payload>` or not."""
        fields: dict[str, Any] = {"chat_id": self.chat_id, "user": self.user()}
        if payload is not None:
            fields["payload"] = payload
        return self._update("bot_started", **fields)

    def says(self, text: str) -> dict[str, Any]:
        return self._message({"text": text, "attachments": None})

    def shares_contact(
        self,
        phone: str,
        *,
        token: str = TOKEN,
        valid: bool = True,
        owner: int | None = None,
        hashed: bool = True,
    ) -> dict[str, Any]:
        """The `request_contact` button's message: the card's hash is keyed with the bot's
        token (`valid=False`: a forged one); `owner` is whose card it is (the sender's by
        default); `hashed=False` is a card sent from the attachment menu."""
        vcf = (
            f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{self.first_name}\r\n"
            f"TEL;TYPE=cell:{phone}\r\nEND:VCARD\r\n"
        )
        who = self.user_id if owner is None else owner
        payload: dict[str, Any] = {
            "vcf_info": vcf,
            "max_info": {"user_id": who, "first_name": self.first_name, "is_bot": False},
        }
        if hashed:
            digest = contact_hash(token, vcf)
            payload["hash"] = digest if valid else digest[::-1]
        return self._message({"text": "", "attachments": [{"type": "contact", "payload": payload}]})

    def presses(self, payload: str, mid: str = "mid.kb") -> dict[str, Any]:
        n = next(_seq)
        return self._update(
            "message_callback",
            callback={
                "timestamp": _now_ms(),
                "callback_id": f"cb.{self.user_id}.{n}",
                "payload": payload,
                "user": self.user(),
            },
            message={
                "sender": {"user_id": BOT_USER_ID, "first_name": "Salonbot", "is_bot": True},
                "recipient": {"chat_id": self.chat_id, "chat_type": "dialog"},
                "timestamp": _now_ms(),
                "body": {"mid": mid, "seq": n, "text": "…"},
            },
        )

    def stops(self) -> dict[str, Any]:
        return self._update("bot_stopped", chat_id=self.chat_id, user=self.user())


class FakeMaxAPI:
    """The MAX Bot API on loopback: point MAX_API_URL at `url`."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.blocked: set[int] = set()
        # The next this-many calls (other than /updates) answer 429.
        self.busy = 0
        self.retry_after: int | None = None
        # The first send of each uploaded image answers 400 attachment.not.ready.
        self.slow_images = False
        self.subscribed: list[dict[str, Any]] = []
        self._updates: list[tuple[int, dict[str, Any]]] = []
        self._marker = itertools.count(1)
        self._arrived = asyncio.Event()
        self._called = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._uploads: dict[str, bytes] = {}
        self._ready: set[str] = set()
        self._mids = itertools.count(1)
        self.url = ""

    async def start(self) -> FakeMaxAPI:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_get("/me", self._me)
        app.router.add_get("/updates", self._get_updates)
        app.router.add_post("/messages", self._messages)
        app.router.add_post("/answers", self._answers)
        app.router.add_post("/uploads", self._uploads_url)
        app.router.add_post("/upload/{key}", self._upload)
        app.router.add_route("*", "/subscriptions", self._subscriptions)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeMaxAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- what tests do ---

    def push(self, update: dict[str, Any]) -> None:
        self._updates.append((next(self._marker), update))
        self._arrived.set()

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def sent_to(self, user_id: int, after: int = 0) -> list[Call]:
        return [
            c
            for c in self.calls[after:]
            if c.path == "/messages" and c.query.get("user_id") == str(user_id)
        ]

    async def wait_for(
        self,
        path: str,
        where: Callable[[Call], bool] = lambda call: True,
        *,
        after: int = 0,
        within: float = 10.0,
    ) -> Call:
        deadline = time.monotonic() + within
        while True:
            for call in self.calls[after:]:
                if call.path == path and where(call):
                    return call
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(c.path, c.query) for c in self.calls[after:]]
                raise AssertionError(f"no {path} call within {within}s; saw {seen}")
            self._called.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._called.wait(), min(remaining, 0.2))

    # --- the API ---

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != self.token:
            return _error(401, "verify.token", "Invalid access_token")
        return None

    async def _record(self, request: web.Request, body: Any = None, **files: bytes) -> None:
        self.calls.append(Call(request.method, request.path, dict(request.query), body, files))
        self._called.set()

    def _throttled(self) -> web.Response | None:
        if self.busy > 0:
            self.busy -= 1
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
            return web.json_response(
                {"code": "too.many.requests", "message": "Too many requests"},
                status=429,
                headers=headers,
            )
        return None

    async def _me(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        await self._record(request)
        return web.json_response(ME)

    async def _get_updates(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        if self.subscribed:
            # While subscribed, polling gets nothing.
            return web.json_response({"updates": [], "marker": None})
        marker = request.query.get("marker")
        if marker is not None and marker.lstrip("-").isdigit():
            self._updates = [(m, u) for m, u in self._updates if m >= int(marker)]
        if not self._updates:
            self._arrived.clear()
            wait = min(float(request.query.get("timeout") or 0), 0.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), wait)
        limit = int(request.query.get("limit") or 100)
        batch = self._updates[:limit]
        nxt = batch[-1][0] + 1 if batch else (int(marker) if marker else None)
        return web.json_response({"updates": [u for _m, u in batch], "marker": nxt})

    async def _body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    async def _messages(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await self._body(request)
        await self._record(request, body)
        throttled = self._throttled()
        if throttled is not None:
            return throttled
        user = request.query.get("user_id", "")
        if not user.isdigit() or not isinstance(body, dict):
            return _error(400, "proto.payload", "Invalid payload")
        if int(user) in self.blocked:
            return _error(403, "chat.denied", f"Key: error.dialog.suspended, args: [{user}]")
        text = body.get("text") or ""
        if len(text) > 4000:
            return _error(400, "proto.payload", "text: size must be between 0 and 4000")
        for attachment in body.get("attachments") or []:
            if attachment.get("type") == "image":
                token = (attachment.get("payload") or {}).get("token")
                if token not in self._uploads:
                    return _error(400, "proto.payload", "unknown attachment token")
                if self.slow_images and token not in self._ready:
                    self._ready.add(token)
                    return _error(400, "attachment.not.ready", "Key: errors.process.attachment")
        mid = f"mid.bot.{next(self._mids)}"
        message = {
            "sender": {"user_id": BOT_USER_ID, "first_name": "Salonbot", "is_bot": True},
            "recipient": {"chat_id": int(user) + 7_000_000_000, "chat_type": "dialog"},
            "timestamp": _now_ms(),
            "body": {"mid": mid, "seq": next(_seq), "text": text},
        }
        return web.json_response({"message": message})

    async def _answers(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await self._body(request)
        await self._record(request, body)
        throttled = self._throttled()
        if throttled is not None:
            return throttled
        if not request.query.get("callback_id") or not isinstance(body, dict) or not body:
            return _error(400, "proto.payload", "Invalid payload")
        return web.json_response({"success": True})

    async def _uploads_url(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        await self._record(request)
        if request.query.get("type") != "image":
            return _error(400, "proto.payload", "type: image, video, audio or file")
        key = f"up{next(self._mids)}"
        self._uploads[key] = b""
        return web.json_response({"url": f"{self.url}/upload/{key}?sig=one-off"})

    async def _upload(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key not in self._uploads or self._uploads[key]:
            return _error(404, "not.found", "upload url used or unknown")
        form = await request.post()
        data = form.get("data")
        if not isinstance(data, web.FileField):
            return _error(400, "proto.payload", "the file goes in the field 'data'")
        png = data.file.read()
        self._uploads[key] = png
        await self._record(request, None, data=png)
        # The token the message then carries is the upload's key.
        return web.json_response({"photos": {f"ph{key}": {"token": key}}})

    async def _subscriptions(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await self._body(request) if request.method == "POST" else None
        await self._record(request, body)
        if request.method == "GET":
            return web.json_response({"subscriptions": self.subscribed})
        if request.method == "DELETE":
            url = request.query.get("url")
            self.subscribed = [s for s in self.subscribed if s["url"] != url]
            return web.json_response({"success": True})
        if request.method != "POST" or not isinstance(body, dict) or "url" not in body:
            return _error(400, "proto.payload", "Invalid payload")
        self.subscribed.append({"url": body["url"], "time": _now_ms(), "update_types": []})
        return web.json_response({"success": True})

    def image(self, token: str) -> bytes:
        """The PNG uploaded under `token`."""
        return self._uploads[token]
