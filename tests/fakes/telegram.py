"""Fakes of the Telegram Bot API, and the people who write to the bot.

* `RecordingSession` is aiogram's MockedBot pattern: a session that records every method object
  the bot sends and answers with a canned, well-formed result — for tests that feed updates
  straight into `Dispatcher.feed_update`.
* `FakeBotAPI` is a loopback HTTP server with the Bot API's paths (`/bot<token>/<method>`):
  `getUpdates` long-polls a queue of updates the test pushes; every call is recorded with its
  parameters and uploaded files — for tests that run the real polling loop.
* `Person` builds the updates a Telegram user produces (messages, commands, a shared contact,
  a pressed button) with increasing update ids.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import socket
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from aiohttp import web

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
BOT_ID = 123456789
BOT_USERNAME = "salonbot_test_bot"
ME = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Salonbot",
    "username": BOT_USERNAME,
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
BLOCKED = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
CHAT_NOT_FOUND = {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}


def flood(retry_after: int) -> dict[str, Any]:
    """The Bot API's flood-control answer (HTTP 429), as it names the wait."""
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }


@dataclass
class Refusals:
    """Chats the Bot API refuses: blocked ones (403), unknown ones (400 chat not found), and
    flood control for the next N sends to a chat (429 with `retry_after`)."""

    blocked: set[int] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)
    # chat id -> (sends still refused, retry_after seconds)
    flooded: dict[int, tuple[int, int]] = field(default_factory=dict)

    def answer(self, chat_id: object) -> tuple[int, dict[str, Any]] | None:
        if not isinstance(chat_id, int):
            return None
        if chat_id in self.blocked:
            return 403, BLOCKED
        if chat_id in self.missing:
            return 400, CHAT_NOT_FOUND
        left, wait = self.flooded.get(chat_id, (0, 0))
        if left > 0:
            self.flooded[chat_id] = (left - 1, wait)
            return 429, flood(wait)
        return None


_update_ids = itertools.count(1)
_message_ids = itertools.count(1000)


def _now() -> int:
    return int(time.time())


def _result_for(method: str, params: dict[str, Any], message_id: int) -> Any:
    """What the Bot API answers to `method` called with `params`."""
    if method == "getMe":
        return ME
    if method in ("sendMessage", "sendPhoto", "editMessageText"):
        chat_id = int(params.get("chat_id") or 0)
        message: dict[str, Any] = {
            "message_id": int(params.get("message_id") or message_id),
            "date": _now(),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Salonbot"},
        }
        if method == "sendPhoto":
            message["photo"] = [
                {
                    "file_id": f"photo{message_id}",
                    "file_unique_id": f"u{message_id}",
                    "width": 370,
                    "height": 370,
                }
            ]
            if params.get("caption"):
                message["caption"] = params["caption"]
        else:
            message["text"] = params.get("text", "")
        return message
    if method == "getUpdates":
        return []
    if method == "getWebhookInfo":
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
    return True


# --- the recording session (MockedBot) ---


class RecordingSession(BaseSession):
    """Records every method the bot calls and answers it as the Bot API would."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.refusals = Refusals()
        # The chats that blocked the bot (403); `refusals` has the other answers.
        self.blocked_chats = self.refusals.blocked
        self.closed = False

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (BaseSession's signature)
    ) -> TelegramType:
        self.requests.append(method)
        params = method.model_dump(warnings=False)
        refused = self.refusals.answer(params.get("chat_id"))
        if refused is not None:
            response = self.check_response(bot, method, refused[0], json.dumps(refused[1]))
        else:
            result = _result_for(method.__api_method__, params, next(_message_ids))
            body = json.dumps({"ok": True, "result": result}, default=str)
            response = self.check_response(bot, method, 200, body)
        return response.result  # type: ignore[return-value]

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 (BaseSession's signature)
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""

    async def close(self) -> None:
        self.closed = True

    def sent(self, since: int = 0) -> list[TelegramMethod[Any]]:
        return self.requests[since:]


def recording_bot() -> tuple[Bot, RecordingSession]:
    session = RecordingSession()
    return Bot(TOKEN, session=session), session


# --- people ---


@dataclass
class Person:
    """A Telegram user talking to the bot in a private chat."""

    id: int
    first_name: str = "Анна"
    language_code: str | None = "ru"

    def user(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.first_name}

    def _message(self, **fields: Any) -> dict[str, Any]:
        return {
            "update_id": next(_update_ids),
            "message": {
                "message_id": next(_message_ids),
                "date": _now(),
                "chat": self.chat(),
                "from": self.user(),
                **fields,
            },
        }

    def says(self, text: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            length = len(text.split(" ", 1)[0])
            fields["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._message(**fields)

    def shares_contact(self, phone: str, user_id: int | None = None) -> dict[str, Any]:
        """Telegram's contact button sends the sender's own card (`user_id` is theirs)."""
        contact = {
            "phone_number": phone,
            "first_name": self.first_name,
            "user_id": self.id if user_id is None else user_id,
        }
        return self._message(contact=contact)

    def replies_to(self, message_id: int, text: str, quoted: str = "…") -> dict[str, Any]:
        """A reply (swipe → Reply) to the bot's message `message_id` in this chat."""
        replied = {
            "message_id": message_id,
            "date": _now(),
            "chat": self.chat(),
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Salonbot"},
            "text": quoted,
        }
        return self._message(text=text, reply_to_message=replied)

    def sends_photo(self, caption: str | None = None) -> dict[str, Any]:
        photo = [{"file_id": "AgAD-photo", "file_unique_id": "u1", "width": 90, "height": 90}]
        return self._message(photo=photo, **({"caption": caption} if caption else {}))

    def sends_voice(self) -> dict[str, Any]:
        voice = {"file_id": "AwAD-voice", "file_unique_id": "u2", "duration": 4}
        return self._message(voice=voice)

    def presses(self, data: str, message_id: int = 1) -> dict[str, Any]:
        return {
            "update_id": next(_update_ids),
            "callback_query": {
                "id": f"cb{next(_update_ids)}",
                "from": self.user(),
                "chat_instance": f"ci{self.id}",
                "data": data,
                "message": {
                    "message_id": message_id,
                    "date": _now(),
                    "chat": self.chat(),
                    "from": {"id": BOT_ID, "is_bot": True, "first_name": "Salonbot"},
                    "text": "…",
                },
            },
        }

    def blocks_bot(self) -> dict[str, Any]:
        return self._member_change("member", "kicked")

    def _member_change(self, old: str, new: str) -> dict[str, Any]:
        bot_user = {"id": BOT_ID, "is_bot": True, "first_name": "Salonbot"}
        return {
            "update_id": next(_update_ids),
            "my_chat_member": {
                "chat": self.chat(),
                "from": self.user(),
                "date": _now(),
                "old_chat_member": {"status": old, "user": bot_user},
                "new_chat_member": {
                    "status": new,
                    "user": bot_user,
                    **({"until_date": 0} if new == "kicked" else {}),
                },
            },
        }


def as_update(raw: dict[str, Any], bot: Bot) -> Update:
    return Update.model_validate(raw, context={"bot": bot})


# --- the loopback Bot API server ---


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


def too_many(retry_after: int) -> dict[str, Any]:
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }


class FakeBotAPI:
    """A Bot API server on loopback: point TELEGRAM_API_URL at `url`.

    With `per_second`, sends past that many in any second (a sliding window, as Telegram's
    flood control counts them) are refused with 429 and `retry_after`, and counted in
    `refused`; so are a chat's sends less than `chat_gap` seconds apart."""

    def __init__(
        self,
        token: str = TOKEN,
        *,
        per_second: float | None = None,
        chat_gap: float | None = None,
        retry_after: int = 1,
    ) -> None:
        self.token = token
        self.per_second = per_second
        self.chat_gap = chat_gap
        self.retry_after = retry_after
        self.refused = 0
        self._window: collections.deque[float] = collections.deque()
        self._chat_last: dict[int, float] = {}
        self.calls: list[Call] = []
        self.refusals = Refusals()
        # The chats that blocked the bot (403); `refusals` has the other answers.
        self.blocked_chats = self.refusals.blocked
        self._updates: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._called = asyncio.Event()
        self._reserved: socket.socket | None = None
        self.url = ""

    def reserve(self) -> str:
        """A Bot API that is down: `url` is known, but nothing listens there (connections are
        refused) until `start()` serves on that very port."""
        self._reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._reserved.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._reserved.getsockname()[1]}"
        return self.url

    async def start(self) -> FakeBotAPI:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        if self._reserved is not None:
            await web.SockSite(self._runner, self._reserved).start()
            return self
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        elif self._reserved is not None:
            self._reserved.close()

    async def __aenter__(self) -> FakeBotAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def push(self, update: dict[str, Any]) -> None:
        """Queue an update for the bot's next getUpdates."""
        self._updates.append(update)
        self._arrived.set()

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self,
        method: str,
        where: Callable[[Call], bool] = lambda call: True,
        *,
        after: int = 0,
        within: float = 10.0,
    ) -> Call:
        """The first call to `method` (from index `after` on) that satisfies `where`."""
        deadline = time.monotonic() + within
        while True:
            for call in self.calls[after:]:
                if call.method == method and where(call):
                    return call
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(c.method, c.params.get("text")) for c in self.calls[after:]]
                raise AssertionError(f"no {method} call within {within}s; saw {seen}")
            self._called.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._called.wait(), min(remaining, 0.2))

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params, files = await self._read(request)
        if method == "getUpdates":
            return web.json_response({"ok": True, "result": await self._get_updates(params)})
        chat_id = params.get("chat_id")
        if method.startswith("send") and self._flooded(chat_id):
            self.refused += 1
            return web.json_response(too_many(self.retry_after), status=429)
        self.calls.append(Call(method, params, files))
        self._called.set()
        refused = self.refusals.answer(params.get("chat_id"))
        if refused is not None:
            return web.json_response(refused[1], status=refused[0])
        result = _result_for(method, params, next(_message_ids))
        return web.json_response({"ok": True, "result": result})

    def _flooded(self, chat_id: object) -> bool:
        now = time.monotonic()
        if self.per_second is not None:
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if len(self._window) >= self.per_second:
                return True
        if self.chat_gap is not None and isinstance(chat_id, int):
            last = self._chat_last.get(chat_id)
            if last is not None and now - last < self.chat_gap:
                return True
            self._chat_last[chat_id] = now
        if self.per_second is not None:
            self._window.append(now)
        return False

    async def _read(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            params = dict(await request.json())
            return params, files
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                files[name] = value.file.read()
            else:
                params[name] = _decode(name, str(value))
        return params, files

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        # Updates below the offset are confirmed: drop them, as Telegram does.
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates:
            self._arrived.clear()
            wait = min(float(params.get("timeout") or 0), 0.5)
            try:
                await asyncio.wait_for(self._arrived.wait(), wait)
            except TimeoutError:
                return []
        return list(self._updates)


_NUMBERS = frozenset({"chat_id", "message_id", "offset", "timeout", "limit"})


def _decode(name: str, value: str) -> Any:
    """Form fields carry JSON for objects and numbers; text stays text."""
    if name in _NUMBERS and value.lstrip("-").isdigit():
        return int(value)
    if value[:1] in "{[" and name not in ("text", "caption"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- a Telegram ClientChannel for the visit loop's tests and benchmark ---


class TelegramTestChannel:
    """Sends `Reply`s through the real Bot API path (bot.telegram.render.send_replies) and
    says how it went as a bot.outbound.Delivery; a 429's `retry_after` is kept in
    `last_retry_after` for the pacing. (The product's Telegram ClientChannel comes with the
    delivery work; this one is for tests until then.)"""

    name = "telegram"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.last_retry_after: float | None = None

    async def send(self, to: Any, company: Any, replies: Any) -> Any:
        from aiogram.exceptions import (
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramNetworkError,
            TelegramRetryAfter,
            TelegramServerError,
        )

        from bot.outbound import Delivery
        from bot.telegram.render import send_replies

        chat = to.addresses.get(self.name)
        if chat is None:
            return Delivery.NO_CHAT
        try:
            await send_replies(self.bot, int(chat), replies)
        except TelegramRetryAfter as exc:
            self.last_retry_after = float(exc.retry_after)
            return Delivery.RETRY
        except (TelegramNetworkError, TelegramServerError):
            return Delivery.RETRY
        except TelegramForbiddenError:
            return Delivery.GONE
        except TelegramBadRequest as exc:
            return Delivery.GONE if "chat not found" in exc.message else Delivery.RETRY
        return Delivery.SENT
