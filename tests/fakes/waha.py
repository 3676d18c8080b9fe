"""A WAHA emulator on loopback: the session lifecycle, QR rotation, sending and signed webhooks,
with the paths and JSON shapes of shared/reference/whatsapp-waha.md.

Where the reference is silent it follows WAHA itself: creating an existing session answers 422,
an unknown or stopped session 404, a running session that is not WORKING 422 on calls that need
WORKING, `start` on a running (even FAILED) session changes nothing, `logout` of a running
session brings it back to SCAN_QR_CODE, a linked session that restarts goes straight to WORKING,
and `GET /api/{session}/lids/{lid}` answers `{"lid", "pn"}` with `pn` null when unknown.

Webhooks go out in order from one worker; a failed delivery is retried up to
`delivery_attempts` times `retry_delay` apart (the session's retry policy, shortened for tests),
with the same body and headers each time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import qrcode
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STOPPED = "STOPPED"
STARTING = "STARTING"
SCAN_QR_CODE = "SCAN_QR_CODE"
WORKING = "WORKING"
FAILED = "FAILED"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Delivery:
    """One webhook POST attempt (or replay) and what the receiver answered."""

    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class FakeSession:
    name: str
    config: dict[str, Any]
    status: str = STOPPED
    me: dict[str, Any] | None = None
    qr: str | None = None
    qr_values: list[str] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    pairing_codes: list[tuple[str, str]] = field(default_factory=list)
    timer: asyncio.Task[None] | None = None

    def info(self, engine: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "me": dict(self.me) if self.me else None,
            "engine": {"engine": engine},
            "config": self.config,
        }


class WahaEmulator:
    """`async with WahaEmulator() as waha:` serves on `waha.url` until the block ends."""

    def __init__(
        self,
        *,
        api_key: str = "waha-test-key",
        engine: str = "GOWS",
        start_delay: float = 0.05,
        qr_interval: float = 0.2,
        first_qr_lifetime: float | None = None,
        qr_series: int = 6,
        delivery_attempts: int = 3,
        retry_delay: float = 0.05,
    ) -> None:
        self.api_key = api_key
        self.engine = engine
        self.start_delay = start_delay
        self.qr_interval = qr_interval
        self.first_qr_lifetime = qr_interval if first_qr_lifetime is None else first_qr_lifetime
        self.qr_series = qr_series
        self.delivery_attempts = delivery_attempts
        self.retry_delay = retry_delay
        # When set, a starting session stays STARTING until the test sets this event.
        self.start_gate: asyncio.Event | None = None

        self.sessions: dict[str, FakeSession] = {}
        self.calls: list[Call] = []
        self.sent: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []
        self.typing: list[tuple[str, str, str]] = []
        self.deliveries: list[Delivery] = []
        # lid -> phone digits (or a `…@c.us` id); None or absent: WhatsApp does not tell.
        self.lids: dict[str, str | None] = {}

        self._faults: list[tuple[str, float]] = []
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[None] | None]] = (
            asyncio.Queue()
        )
        self._worker: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._url = ""

    # -- lifetime ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the emulator is not running; use `async with`")
        return self._url

    async def __aenter__(self) -> WahaEmulator:
        app = web.Application(middlewares=[self._middleware])
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._worker = asyncio.create_task(self._deliver_forever())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session in self.sessions.values():
            self._cancel_timer(session)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._url = ""

    # -- test controls ----------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` API requests (after the key check) answer `status`."""
        self._faults.extend([("status", float(status))] * n)

    def stall_next(self, n: int = 1, seconds: float = 1.0) -> None:
        """The next `n` API requests answer only after `seconds` (to provoke timeouts)."""
        self._faults.extend([("stall", seconds)] * n)

    def clear_faults(self) -> None:
        self._faults.clear()

    async def scan(self, name: str, phone: str = "79001234567", push_name: str = "Salon") -> None:
        """The owner scans the QR: the session is linked and WORKING."""
        session = self.sessions[name]
        if session.status != SCAN_QR_CODE:
            raise RuntimeError(f"session {name} is {session.status}, not {SCAN_QR_CODE}")
        self._cancel_timer(session)
        digits = phone.lstrip("+")
        session.me = {"id": f"{digits}:15@c.us", "pushName": push_name, "lid": None}
        session.qr = None
        self._set_status(session, WORKING)

    async def fail_session(self, name: str) -> None:
        session = self.sessions[name]
        self._cancel_timer(session)
        session.qr = None
        self._set_status(session, FAILED)

    def current_qr(self, name: str) -> str | None:
        return self.sessions[name].qr

    async def incoming_message(
        self,
        session: str,
        from_: str,
        body: str,
        has_media: bool = False,
        from_me: bool = False,
        message_id: str | None = None,
        reply_to: str | None = None,
        mimetype: str = "image/jpeg",
    ) -> dict[str, Any]:
        """A person writes to the salon: POST a signed `message` event and wait until it is
        delivered (or given up on). Returns the event's payload."""
        fake = self.sessions[session]
        if fake.status != WORKING or not fake.me:
            raise RuntimeError(f"session {session} is {fake.status}: it receives nothing")
        own = _strip_device(fake.me["id"])
        msg_id = message_id or f"{'true' if from_me else 'false'}_{from_}_3EB0{_hex(10)}"
        payload: dict[str, Any] = {
            "id": msg_id,
            "timestamp": int(time.time()),
            "from": from_,
            "fromMe": from_me,
            "source": "app",
            "to": own,
            "participant": None,
            "body": body,
            "hasMedia": has_media,
            "media": (
                {
                    "url": f"{self._url}/api/files/{session}/{msg_id}.jpeg",
                    "mimetype": mimetype,
                    "filename": None,
                    "error": None,
                }
                if has_media
                else None
            ),
            "ack": 1,
            "ackName": "SERVER",
            # A quoted reply names the quoted message (WAHA's `replyTo`), sent by this
            # session's own number when it quotes the salon's message.
            "replyTo": (
                {"id": reply_to, "participant": own, "body": self._sent_text(reply_to)}
                if reply_to
                else None
            ),
            "_data": {},
        }
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._emit(fake, "message", payload, done)
        await done
        return payload

    def _sent_text(self, message_id: str) -> str | None:
        for sent in self.sent:
            if sent.get("id") == message_id:
                return str(sent.get("text") or sent.get("caption") or "")
        return None

    async def resend_last_event(self, *, fresh_timestamp: bool = False) -> int | None:
        """POST the last delivered event again, byte for byte (WAHA's retry, or a replay).

        `fresh_timestamp` re-stamps `X-Webhook-Timestamp`, as anyone replaying a captured
        request could: the header is not covered by the HMAC."""
        if not self.deliveries:
            raise RuntimeError("no event was delivered yet")
        last = self.deliveries[-1]
        headers = dict(last.headers)
        if fresh_timestamp:
            headers["X-Webhook-Timestamp"] = str(_now_ms())
        delivery = Delivery(last.url, last.body, headers)
        await self._post(delivery)
        return delivery.status

    async def drain(self) -> None:
        """Wait until every queued webhook has been delivered (or given up on)."""
        await self._queue.join()

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """Distinct events sent so far (retries and replays counted once), oldest first."""
        seen: dict[str, dict[str, Any]] = {}
        for delivery in self.deliveries:
            data = delivery.event
            if event is None or data["event"] == event:
                seen.setdefault(data["id"], data)
        return list(seen.values())

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    # -- lifecycle --------------------------------------------------------------------------

    def _set_status(self, session: FakeSession, status: str) -> None:
        session.status = status
        session.statuses.append({"status": status, "timestamp": _now_ms()})
        self._emit(
            session,
            "session.status",
            {"status": status, "statuses": [dict(s) for s in session.statuses[-10:]]},
        )

    def _start(self, session: FakeSession) -> None:
        self._cancel_timer(session)
        session.qr = None
        session.qr_values.clear()
        self._set_status(session, STARTING)
        session.timer = asyncio.create_task(self._run(session))

    def _stop(self, session: FakeSession) -> None:
        self._cancel_timer(session)
        session.qr = None
        if session.status != STOPPED:
            self._set_status(session, STOPPED)

    async def _run(self, session: FakeSession) -> None:
        await asyncio.sleep(self.start_delay)
        if self.start_gate is not None:
            await self.start_gate.wait()
        if session.me:
            # Linked before and still authorised: WAHA restores it without a QR.
            self._set_status(session, WORKING)
            return
        for index in range(self.qr_series):
            session.qr = f"2@emu{index + 1}-{secrets.token_urlsafe(24)},{_b64(32)},{_b64(32)}"
            session.qr_values.append(session.qr)
            self._set_status(session, SCAN_QR_CODE)
            await asyncio.sleep(self.first_qr_lifetime if index == 0 else self.qr_interval)
        session.qr = None
        self._set_status(session, FAILED)

    @staticmethod
    def _cancel_timer(session: FakeSession) -> None:
        if (
            session.timer is not None
            and not session.timer.done()
            and session.timer is not asyncio.current_task()
        ):
            session.timer.cancel()
        session.timer = None

    # -- webhooks ---------------------------------------------------------------------------

    def _emit(
        self,
        session: FakeSession,
        event: str,
        payload: dict[str, Any],
        done: asyncio.Future[None] | None = None,
    ) -> None:
        body = {
            "id": f"evt_{_hex(13)}",
            "timestamp": _now_ms(),
            "event": event,
            "session": session.name,
            "metadata": session.config.get("metadata"),
            "me": dict(session.me) if session.me else None,
            "payload": payload,
            "engine": self.engine,
            "environment": {"version": "2026.6.1", "engine": self.engine, "tier": "CORE"},
        }
        hooks = [
            hook
            for hook in session.config.get("webhooks") or []
            if hook.get("url") and (event in hook.get("events", []) or "*" in hook["events"])
        ]
        if not hooks:
            if done is not None:
                done.set_result(None)
            return
        for i, hook in enumerate(hooks):
            last = i == len(hooks) - 1
            self._queue.put_nowait(({"hook": hook, "body": body}, done if last else None))

    async def _deliver_forever(self) -> None:
        while True:
            item, done = await self._queue.get()
            try:
                await self._deliver(item["hook"], item["body"])
            finally:
                if done is not None and not done.done():
                    done.set_result(None)
                self._queue.task_done()

    async def _deliver(self, hook: dict[str, Any], event: dict[str, Any]) -> None:
        raw = json.dumps(event, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Request-Id": f"req_{_hex(13)}",
            "X-Webhook-Timestamp": str(_now_ms()),
        }
        key = (hook.get("hmac") or {}).get("key")
        if key:
            headers["X-Webhook-Hmac"] = hmac.new(key.encode(), raw, hashlib.sha512).hexdigest()
            headers["X-Webhook-Hmac-Algorithm"] = "sha512"
        configured = int((hook.get("retries") or {}).get("attempts") or 1)
        for attempt in range(max(1, min(configured, self.delivery_attempts))):
            if attempt:
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
            delivery = Delivery(hook["url"], raw, dict(headers))
            await self._post(delivery)
            if delivery.status is not None and 200 <= delivery.status < 300:
                return

    async def _post(self, delivery: Delivery) -> None:
        assert self._client is not None
        self.deliveries.append(delivery)
        try:
            async with self._client.post(
                delivery.url, data=delivery.body, headers=delivery.headers
            ) as response:
                delivery.status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"

    # -- HTTP -------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            body: Any = await request.json() if request.can_read_body else None
        except ValueError:
            body = await request.text()
        call = Call(request.method, request.path, dict(request.query), body)
        self.calls.append(call)
        given = request.headers.get("X-Api-Key", "")
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            call.status = 401
            return web.json_response({"message": "Unauthorized", "statusCode": 401}, status=401)
        if self._faults:
            kind, value = self._faults.pop(0)
            if kind == "status":
                call.status = int(value)
                return _error(int(value), "Injected fault")
            await asyncio.sleep(value)
        try:
            response = await handler(request)
        except _Refused as exc:
            response = _error(exc.status, exc.message)
        except web.HTTPException as exc:
            call.status = exc.status
            raise
        call.status = response.status
        return response

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/api/sessions", self._list_sessions)
        app.router.add_post("/api/sessions", self._create_session)
        app.router.add_get("/api/sessions/{name}", self._get_session)
        app.router.add_delete("/api/sessions/{name}", self._delete_session)
        app.router.add_post("/api/sessions/{name}/{action}", self._session_action)
        app.router.add_get("/api/{name}/auth/qr", self._qr)
        app.router.add_post("/api/{name}/auth/request-code", self._request_code)
        app.router.add_get("/api/{name}/lids/{lid}", self._lid)
        app.router.add_post("/api/sendText", self._send_text)
        app.router.add_post("/api/sendImage", self._send_image)
        app.router.add_post("/api/sendSeen", self._send_seen)
        app.router.add_post("/api/startTyping", self._typing)
        app.router.add_post("/api/stopTyping", self._typing)

    def _session_or_404(self, name: str) -> FakeSession:
        session = self.sessions.get(name)
        if session is None:
            raise _http_error(404, "Session not found")
        return session

    def _working_or_error(self, name: object) -> FakeSession:
        session = self.sessions.get(name) if isinstance(name, str) else None
        if session is None or session.status == STOPPED:
            raise _http_error(404, f"We didn't find a session with name '{name}'")
        if session.status != WORKING:
            raise _http_error(
                422,
                f"Session status is not as expected. Try again later or restart the session. "
                f"Expected: ['{WORKING}'], actual: '{session.status}'",
            )
        return session

    async def _list_sessions(self, request: web.Request) -> web.Response:
        return web.json_response([s.info(self.engine) for s in self.sessions.values()])

    async def _create_session(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        name = data.get("name") or f"session_{_hex(8)}"
        if not isinstance(name, str):
            raise _http_error(400, "name must be a string")
        if name in self.sessions:
            raise _http_error(422, f"Session '{name}' already exists. Use PUT to update it.")
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise _http_error(400, "config must be an object")
        session = FakeSession(name=name, config=config)
        self.sessions[name] = session
        if data.get("start"):
            self._start(session)
        return web.json_response(session.info(self.engine), status=201)

    async def _get_session(self, request: web.Request) -> web.Response:
        session = self._session_or_404(request.match_info["name"])
        return web.json_response(session.info(self.engine))

    async def _delete_session(self, request: web.Request) -> web.Response:
        session = self.sessions.pop(request.match_info["name"], None)
        if session is not None:
            self._cancel_timer(session)
        return web.json_response(None)

    async def _session_action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in ("start", "stop", "restart", "logout"):
            raise _http_error(404, f"Cannot POST {request.path}")
        session = self._session_or_404(request.match_info["name"])
        running = session.status != STOPPED
        if action == "start" and not running:
            self._start(session)
        elif action == "stop":
            self._stop(session)
        elif action == "restart":
            self._stop(session)
            self._start(session)
        elif action == "logout":
            self._stop(session)
            session.me = None
            if running:
                self._start(session)
        return web.json_response(session.info(self.engine))

    async def _qr(self, request: web.Request) -> web.StreamResponse:
        session = self._session_or_404(request.match_info["name"])
        if session.status != SCAN_QR_CODE or session.qr is None:
            raise _http_error(
                422,
                f"Session status is not as expected. Expected: ['{SCAN_QR_CODE}'], "
                f"actual: '{session.status}'",
            )
        if request.query.get("format") == "raw":
            return web.json_response({"value": session.qr})
        buffer = io.BytesIO()
        qrcode.make(session.qr).save(buffer, format="PNG")
        png = buffer.getvalue()
        if "application/json" in request.headers.get("Accept", ""):
            data = base64.b64encode(png).decode()
            return web.json_response({"mimetype": "image/png", "data": data})
        return web.Response(body=png, content_type="image/png")

    async def _request_code(self, request: web.Request) -> web.Response:
        session = self._session_or_404(request.match_info["name"])
        data = await _json_object(request)
        phone = data.get("phoneNumber")
        if not isinstance(phone, str) or not phone.isdigit():
            raise _http_error(400, "phoneNumber must be digits")
        if session.status != SCAN_QR_CODE:
            raise _http_error(422, f"Session status is not as expected: '{session.status}'")
        letters = "ABCDEFGHJKLMNPQRSTVWXYZ2345679"
        raw = "".join(secrets.choice(letters) for _ in range(8))
        code = f"{raw[:4]}-{raw[4:]}"
        session.pairing_codes.append((phone, code))
        return web.json_response({"code": code})

    async def _lid(self, request: web.Request) -> web.Response:
        self._working_or_error(request.match_info["name"])
        lid = request.match_info["lid"]
        if "@" not in lid:
            lid += "@lid"
        if not lid.endswith("@lid"):
            raise _http_error(422, "Invalid LID - it must end with @lid")
        phone = self.lids.get(lid)
        pn = None if not phone else phone if "@" in phone else f"{phone.lstrip('+')}@c.us"
        return web.json_response({"lid": lid, "pn": pn})

    async def _send_text(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        session = self._working_or_error(data.get("session"))
        chat_id, text = data.get("chatId"), data.get("text")
        if not isinstance(chat_id, str) or not isinstance(text, str):
            raise _http_error(400, "chatId and text are required strings")
        message = self._message(session, chat_id, text)
        self.sent.append(
            {
                "type": "text",
                "session": session.name,
                "chatId": chat_id,
                "text": text,
                "reply_to": data.get("reply_to"),
                "id": message["id"],
            }
        )
        return web.json_response(message, status=201)

    async def _send_image(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        session = self._working_or_error(data.get("session"))
        chat_id, file = data.get("chatId"), data.get("file")
        if not isinstance(chat_id, str) or not isinstance(file, dict):
            raise _http_error(400, "chatId and file are required")
        image: bytes | None = None
        if "data" in file:
            try:
                image = base64.b64decode(str(file["data"]), validate=True)
            except binascii.Error:
                raise _http_error(400, "file.data is not base64") from None
        elif "url" not in file:
            raise _http_error(400, "file needs data or url")
        caption = data.get("caption")
        message = self._message(session, chat_id, caption or "")
        self.sent.append(
            {
                "type": "image",
                "session": session.name,
                "chatId": chat_id,
                "image": image,
                "url": file.get("url"),
                "mimetype": file.get("mimetype"),
                "filename": file.get("filename"),
                "caption": caption,
                "reply_to": data.get("reply_to"),
                "id": message["id"],
            }
        )
        return web.json_response(message, status=201)

    async def _send_seen(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        session = self._working_or_error(data.get("session"))
        self.seen.append(
            {
                "session": session.name,
                "chatId": data.get("chatId"),
                "messageIds": data.get("messageIds") or [data.get("messageId")],
            }
        )
        return web.json_response({}, status=201)

    async def _typing(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        session = self._working_or_error(data.get("session"))
        action = request.path.rsplit("/", 1)[-1]
        self.typing.append((session.name, str(data.get("chatId")), action))
        return web.json_response({}, status=201)

    def _message(self, session: FakeSession, chat_id: str, body: str) -> dict[str, Any]:
        assert session.me is not None
        return {
            "id": f"true_{chat_id}_3EB0{_hex(10)}",
            "timestamp": int(time.time()),
            "from": _strip_device(session.me["id"]),
            "fromMe": True,
            "to": chat_id,
            "body": body,
            "hasMedia": False,
            "ack": 1,
        }


def _strip_device(jid: str) -> str:
    user, at, server = jid.partition("@")
    return user.partition(":")[0] + at + server


def _hex(n: int) -> str:
    return secrets.token_hex(n).upper()


def _b64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "message": message}, status=status)


class _Refused(Exception):
    """An error answer in WAHA's shape, raised from a handler and rendered by the middleware."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _http_error(status: int, message: str) -> _Refused:
    return _Refused(status, message)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise _http_error(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise _http_error(400, "body is not a JSON object")
    return data
