"""The WAHA gateway client against the WAHA emulator, and webhook verification."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from core.settings import Settings
from core.whatsapp import (
    GatewayNotConfigured,
    GatewayUnauthorized,
    GatewayUnavailable,
    QrNotAvailable,
    SessionInfo,
    SessionNotConnected,
    SessionNotFound,
    WahaGateway,
    WebhookBadShape,
    WebhookEvent,
    WebhookInvalidJson,
    WebhookRejected,
    WebhookSignatureMismatch,
    WebhookSignatureMissing,
    WebhookStale,
    WebhookTimestampInvalid,
    WhatsAppGateway,
    chat_id_for_phone,
    phone_from_chat_id,
    sign_webhook,
    strip_device_suffix,
    verify_webhook,
)
from tests.fakes.waha import WahaEmulator

API_KEY = "waha-api-key-for-tests-0123456789"
HMAC_KEY = "hmac-key-for-tests-abcdefghijklmnop"
SESSION = "salon-962302"
METADATA = {"company_id": "962302"}


class Receiver:
    """Our side of the webhook: verifies every POST with the client and keeps the events."""

    def __init__(self, gateway: WahaGateway) -> None:
        self.gateway = gateway
        self.events: list[WebhookEvent] = []
        self.rejected: list[WebhookRejected] = []
        self.answer_status: int | None = None
        self._changed = asyncio.Condition()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            event = self.gateway.verify_webhook(raw, request.headers)
        except WebhookRejected as exc:
            self.rejected.append(exc)
            return web.json_response({"error": str(exc)}, status=exc.status)
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()
        return web.json_response({"ok": True}, status=self.answer_status or 200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhook/whatsapp", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/webhook/whatsapp"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(
        self, predicate: Callable[[WebhookEvent], bool], within: float = 2.0
    ) -> WebhookEvent:
        async def found() -> WebhookEvent:
            async with self._changed:
                while True:
                    for event in self.events:
                        if predicate(event):
                            return event
                    await self._changed.wait()

        return await asyncio.wait_for(found(), within)

    def statuses(self) -> list[str]:
        return [e.payload["status"] for e in self.events if e.event == "session.status"]


def status_is(status: str, after: int = 0) -> Callable[[WebhookEvent], bool]:
    def check(event: WebhookEvent) -> bool:
        return (
            event.event == "session.status"
            and event.payload.get("status") == status
            and event.timestamp_ms >= after
        )

    return check


@pytest.fixture
async def waha() -> AsyncIterator[WahaEmulator]:
    async with WahaEmulator(
        api_key=API_KEY, start_delay=0.02, first_qr_lifetime=0.25, qr_interval=0.15
    ) as emulator:
        yield emulator


@pytest.fixture
async def gateway(waha: WahaEmulator) -> AsyncIterator[WahaGateway]:
    gw = WahaGateway(waha.url, API_KEY, HMAC_KEY, timeout=2.0, retries=2, backoff=0.01)
    yield gw
    await gw.aclose()


@pytest.fixture
async def receiver(gateway: WahaGateway) -> AsyncIterator[Receiver]:
    rec = Receiver(gateway)
    await rec.start()
    yield rec
    await rec.stop()


async def linked(waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver) -> SessionInfo:
    await gateway.ensure_session(SESSION, receiver.url, METADATA)
    await receiver.wait_for(status_is("SCAN_QR_CODE"))
    await waha.scan(SESSION)
    await receiver.wait_for(status_is("WORKING"))
    return await gateway.status(SESSION)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- session lifecycle ------------------------------------------------------------------------


async def test_lifecycle_from_qr_to_working(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    waha.start_gate = asyncio.Event()  # STARTING until the QR check below has run
    info = await gateway.ensure_session(SESSION, receiver.url, METADATA)
    assert info == SessionInfo(name=SESSION, status="STARTING")
    with pytest.raises(QrNotAvailable):
        await gateway.qr_value(SESSION)
    waha.start_gate.set()

    first = await receiver.wait_for(status_is("SCAN_QR_CODE"))
    assert first.session == SESSION and first.metadata == METADATA and first.me_id is None
    qr1 = await gateway.qr_value(SESSION)
    assert qr1 == waha.current_qr(SESSION)
    await receiver.wait_for(lambda e: status_is("SCAN_QR_CODE")(e) and e.id != first.id)
    qr2 = await gateway.qr_value(SESSION)
    assert qr2 != qr1

    await waha.scan(SESSION, phone="79001234567", push_name="Salon Lotos")
    working = await receiver.wait_for(status_is("WORKING"))
    assert working.me_id == "79001234567:15@c.us"
    assert working.me_phone == "+79001234567"
    info = await gateway.status(SESSION)
    assert info == SessionInfo(
        name=SESSION,
        status="WORKING",
        me_id="79001234567:15@c.us",
        phone="+79001234567",
        push_name="Salon Lotos",
    )
    assert info.working
    with pytest.raises(QrNotAvailable):
        await gateway.qr_value(SESSION)
    # Every delivery the emulator made verified with the client's own check.
    assert receiver.rejected == []
    assert receiver.statuses()[0] == "STARTING"
    assert receiver.statuses()[-1] == "WORKING"


async def test_qr_series_runs_out_and_restart_starts_over(gateway: WahaGateway) -> None:
    async with WahaEmulator(
        api_key=API_KEY, start_delay=0.01, first_qr_lifetime=0.05, qr_interval=0.03, qr_series=3
    ) as waha:
        gw = WahaGateway(waha.url, API_KEY, HMAC_KEY, backoff=0.01)
        rec = Receiver(gw)
        await rec.start()
        try:
            await gw.ensure_session(SESSION, rec.url, METADATA)
            await rec.wait_for(status_is("FAILED"))
            assert rec.statuses() == ["STARTING"] + ["SCAN_QR_CODE"] * 3 + ["FAILED"]
            assert len(set(waha.sessions[SESSION].qr_values)) == 3
            with pytest.raises(QrNotAvailable):
                await gw.qr_value(SESSION)

            # ensure_session leaves a FAILED session alone: restarting is the caller's call.
            assert (await gw.ensure_session(SESSION, rec.url, METADATA)).status == "FAILED"
            assert waha.calls_to("POST", f"/api/sessions/{SESSION}/start") == []

            restarted_at = now_ms()
            assert (await gw.restart(SESSION)).status == "STARTING"
            await rec.wait_for(status_is("SCAN_QR_CODE", after=restarted_at))
            assert await gw.qr_value(SESSION)
        finally:
            await rec.stop()
            await gw.aclose()


async def test_ensure_session_creates_once_with_our_webhook(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    other = WahaGateway(waha.url, API_KEY, HMAC_KEY)
    try:
        results = await asyncio.gather(
            gateway.ensure_session(SESSION, receiver.url, METADATA),
            other.ensure_session(SESSION, receiver.url, METADATA),
            gateway.ensure_session(SESSION, receiver.url, METADATA),
        )
    finally:
        await other.aclose()
    assert {r.name for r in results} == {SESSION}
    assert list(waha.sessions) == [SESSION]
    created = [c for c in waha.calls_to("POST", "/api/sessions") if c.status == 201]
    assert len(created) == 1
    assert created[0].body == {
        "name": SESSION,
        "start": True,
        "config": {
            "metadata": METADATA,
            "webhooks": [
                {
                    "url": receiver.url,
                    "events": ["message", "session.status"],
                    "hmac": {"key": HMAC_KEY},
                    "retries": {"policy": "exponential", "delaySeconds": 2, "attempts": 15},
                }
            ],
        },
    }

    await gateway.ensure_session(SESSION, receiver.url, METADATA)
    assert len(waha.calls_to("POST", "/api/sessions")) <= 3
    assert waha.calls_to("POST", f"/api/sessions/{SESSION}/start") == []

    assert (await gateway.stop(SESSION)).status == "STOPPED"
    assert (await gateway.ensure_session(SESSION, receiver.url, METADATA)).status == "STARTING"
    assert len(waha.calls_to("POST", f"/api/sessions/{SESSION}/start")) == 1
    assert list(waha.sessions) == [SESSION]


async def test_status_of_a_missing_session(gateway: WahaGateway) -> None:
    with pytest.raises(SessionNotFound):
        await gateway.status("nobody")


async def test_linked_session_restarts_straight_to_working_and_logout_unlinks(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    await linked(waha, gateway, receiver)
    mark = now_ms()
    await gateway.restart(SESSION)
    await receiver.wait_for(status_is("WORKING", after=mark))
    assert (await gateway.status(SESSION)).phone == "+79001234567"

    mark = now_ms()
    await gateway.logout(SESSION)
    await receiver.wait_for(status_is("SCAN_QR_CODE", after=mark))
    info = await gateway.status(SESSION)
    assert (info.status, info.me_id, info.phone) == ("SCAN_QR_CODE", None, None)


async def test_pairing_code_only_while_waiting_for_a_link(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    await gateway.ensure_session(SESSION, receiver.url, METADATA)
    await receiver.wait_for(status_is("SCAN_QR_CODE"))
    code = await gateway.request_pairing_code(SESSION, "+79001234567")
    assert waha.sessions[SESSION].pairing_codes == [("79001234567", code)]
    assert len(code) == 9 and code[4] == "-"
    await waha.scan(SESSION)
    await receiver.wait_for(status_is("WORKING"))
    with pytest.raises(QrNotAvailable):
        await gateway.request_pairing_code(SESSION, "+79001234567")


# --- authentication, errors and retries -------------------------------------------------------


async def test_api_key_is_required(waha: WahaEmulator) -> None:
    async with httpx.AsyncClient() as raw:
        assert (await raw.get(f"{waha.url}/api/sessions")).status_code == 401
        answer = await raw.get(f"{waha.url}/api/sessions", headers={"X-Api-Key": API_KEY})
        assert answer.status_code == 200
    wrong = WahaGateway(waha.url, "not-the-key", HMAC_KEY)
    try:
        with pytest.raises(GatewayUnauthorized):
            await wrong.status(SESSION)
        with pytest.raises(GatewayUnauthorized):
            await wrong.send_text(SESSION, "79001234567@c.us", "hi")
    finally:
        await wrong.aclose()


async def test_emulator_serves_the_qr_as_png_too(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    await gateway.ensure_session(SESSION, receiver.url, METADATA)
    await receiver.wait_for(status_is("SCAN_QR_CODE"))
    headers = {"X-Api-Key": API_KEY}
    async with httpx.AsyncClient(base_url=waha.url, headers=headers) as raw:
        png = await raw.get(f"/api/{SESSION}/auth/qr")
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG")
        as_json = await raw.get(f"/api/{SESSION}/auth/qr", headers={"Accept": "application/json"})
        assert as_json.json()["mimetype"] == "image/png"


async def test_send_is_never_retried_but_reads_are(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    await linked(waha, gateway, receiver)

    waha.fail_next(1, status=500)
    with pytest.raises(GatewayUnavailable, match="not retried"):
        await gateway.send_text(SESSION, "79001112233@c.us", "hello")
    assert len(waha.calls_to("POST", "/api/sendText")) == 1
    assert waha.sent == []

    waha.fail_next(1, status=502)
    with pytest.raises(GatewayUnavailable):
        await gateway.send_image(SESSION, "79001112233@c.us", b"\x89PNG", "code.png", "code")
    assert len(waha.calls_to("POST", "/api/sendImage")) == 1

    waha.fail_next(1, status=500)
    with pytest.raises(GatewayUnavailable):
        await gateway.request_pairing_code(SESSION, "+79001234567")
    assert len(waha.calls_to("POST", f"/api/{SESSION}/auth/request-code")) == 1

    path = f"/api/sessions/{SESSION}"
    before = len(waha.calls_to("GET", path))
    waha.fail_next(2, status=503)
    assert (await gateway.status(SESSION)).working
    assert len(waha.calls_to("GET", path)) == before + 3

    before = len(waha.calls_to("GET", path))
    waha.fail_next(3, status=500)
    with pytest.raises(GatewayUnavailable):
        await gateway.status(SESSION)
    assert len(waha.calls_to("GET", path)) == before + 3


async def test_timeouts_and_a_dead_gateway_are_unavailable(
    waha: WahaEmulator, receiver: Receiver
) -> None:
    impatient = WahaGateway(waha.url, API_KEY, HMAC_KEY, timeout=0.05, retries=0)
    try:
        waha.stall_next(1, seconds=0.3)
        with pytest.raises(GatewayUnavailable, match="in time"):
            await impatient.send_text(SESSION, "79001112233@c.us", "hi")
    finally:
        await impatient.aclose()
    dead = WahaGateway("http://127.0.0.1:9", API_KEY, HMAC_KEY, retries=1, backoff=0.01)
    try:
        with pytest.raises(GatewayUnavailable, match="cannot reach"):
            await dead.status(SESSION)
    finally:
        await dead.aclose()


async def test_api_key_never_logged(
    waha: WahaEmulator, gateway: WahaGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    waha.fail_next(4, status=500)
    for call in (gateway.status(SESSION), gateway.send_text(SESSION, "1@c.us", "x")):
        try:
            await call
        except Exception as exc:
            errors.append(str(exc))
    assert len(errors) == 2 and "retrying" in caplog.text
    assert API_KEY not in caplog.text and HMAC_KEY not in caplog.text
    assert all(API_KEY not in e for e in errors)
    assert API_KEY not in repr(gateway)


# --- sending ----------------------------------------------------------------------------------


async def test_text_image_seen_and_typing_reach_the_gateway(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    await linked(waha, gateway, receiver)
    chat = "79001112233@c.us"
    await gateway.send_seen(SESSION, chat, "false_79001112233@c.us_3EB0AA")
    await gateway.start_typing(SESSION, chat)
    await gateway.stop_typing(SESSION, chat)
    message_id = await gateway.send_text(SESSION, chat, "Ваш баланс: 150", reply_to="m1")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    image_id = await gateway.send_image(SESSION, chat, png, "code.png", "Ваш код")

    assert waha.seen == [
        {"session": SESSION, "chatId": chat, "messageIds": ["false_79001112233@c.us_3EB0AA"]}
    ]
    assert waha.typing == [(SESSION, chat, "startTyping"), (SESSION, chat, "stopTyping")]
    text, image = waha.sent
    assert text == {
        "type": "text",
        "session": SESSION,
        "chatId": chat,
        "text": "Ваш баланс: 150",
        "reply_to": "m1",
        "id": message_id,
    }
    assert message_id and message_id.startswith(f"true_{chat}_")
    assert image["image"] == png and image["caption"] == "Ваш код" and image["id"] == image_id
    assert (image["mimetype"], image["filename"]) == ("image/png", "code.png")


async def test_sending_without_a_working_session(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    chat = "79001112233@c.us"
    with pytest.raises(SessionNotConnected):
        await gateway.send_text("nobody", chat, "hi")
    await gateway.ensure_session(SESSION, receiver.url, METADATA)
    await receiver.wait_for(status_is("SCAN_QR_CODE"))
    with pytest.raises(SessionNotConnected):
        await gateway.send_text(SESSION, chat, "hi")
    with pytest.raises(SessionNotConnected):
        await gateway.send_image(SESSION, chat, b"png")
    with pytest.raises(SessionNotConnected):
        await gateway.start_typing(SESSION, chat)
    await gateway.stop(SESSION)
    with pytest.raises(SessionNotConnected):
        await gateway.send_text(SESSION, chat, "hi")
    assert waha.sent == []
    assert len(waha.calls_to("POST", "/api/sendText")) == 3


async def test_lid_lookup(waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver) -> None:
    with pytest.raises(SessionNotConnected):
        await gateway.lid_to_phone("nobody", "123@lid")
    await linked(waha, gateway, receiver)
    waha.lids["111222333444555@lid"] = "79005556677"
    assert await gateway.lid_to_phone(SESSION, "111222333444555@lid") == "+79005556677"
    assert await gateway.lid_to_phone(SESSION, "999888777666555@lid") is None


# --- webhooks ---------------------------------------------------------------------------------


def signed(body: bytes, *, ts: int | None = None, key: str = HMAC_KEY) -> dict[str, str]:
    return {
        "X-Webhook-Request-Id": "req_1",
        "X-Webhook-Timestamp": str(now_ms() if ts is None else ts),
        "X-Webhook-Hmac": sign_webhook(body, key),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }


def event_body(**changes: Any) -> bytes:
    event: dict[str, Any] = {
        "id": "evt_01",
        "timestamp": now_ms(),
        "event": "message",
        "session": SESSION,
        "metadata": METADATA,
        "me": {"id": "79001234567:15@c.us", "pushName": "Salon"},
        "payload": {"id": "false_79001112233@c.us_3EB0", "from": "79001112233@c.us"},
        "engine": "GOWS",
    }
    event.update(changes)
    return json.dumps(event).encode()


def test_good_signature_passes_and_parses() -> None:
    body = event_body()
    event = verify_webhook(body, signed(body), key=HMAC_KEY)
    assert (event.id, event.event, event.session) == ("evt_01", "message", SESSION)
    assert event.me_id == "79001234567:15@c.us" and event.me_phone == "+79001234567"
    assert event.metadata == METADATA and event.payload["from"] == "79001112233@c.us"
    # aiohttp hands over case-insensitive headers; a plain dict may come lower-cased.
    lowercase = {k.lower(): v for k, v in signed(body).items()}
    lowercase["x-webhook-hmac"] = lowercase["x-webhook-hmac"].upper()
    assert verify_webhook(body, lowercase, key=HMAC_KEY).id == "evt_01"
    null_me = event_body(me=None, metadata=None)
    assert verify_webhook(null_me, signed(null_me), key=HMAC_KEY).metadata == {}


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


def _signed_body(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed(body)


BAD_WEBHOOKS: dict[str, Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]] = {
    "no signature": lambda b, h: (b, _without(h, "X-Webhook-Hmac")),
    "wrong signature": lambda b, h: (b, {**h, "X-Webhook-Hmac": "0" * 128}),
    "body changed": lambda b, h: (b + b" ", h),
    "other key": lambda b, h: (b, signed(b, key="another-key")),
    "other algorithm": lambda b, h: (b, {**h, "X-Webhook-Hmac-Algorithm": "sha256"}),
    "no timestamp": lambda b, h: (b, _without(h, "X-Webhook-Timestamp")),
    "bad timestamp": lambda b, h: (b, {**h, "X-Webhook-Timestamp": "yesterday"}),
    "stale": lambda b, h: (b, signed(b, ts=now_ms() - 301_000)),
    "from the future": lambda b, h: (b, signed(b, ts=now_ms() + 301_000)),
    "not json": lambda b, h: _signed_body(b"{not json"),
    "not utf-8": lambda b, h: _signed_body(b"\xff\xfe"),
    "a list": lambda b, h: _signed_body(b"[1, 2]"),
    "no session": lambda b, h: _signed_body(event_body(session=None)),
    "payload not an object": lambda b, h: _signed_body(event_body(payload="x")),
    "timestamp a string": lambda b, h: _signed_body(event_body(timestamp="1")),
}


@pytest.mark.parametrize(
    ("case", "error", "status"),
    [
        ("no signature", WebhookSignatureMissing, 401),
        ("wrong signature", WebhookSignatureMismatch, 401),
        ("body changed", WebhookSignatureMismatch, 401),
        ("other key", WebhookSignatureMismatch, 401),
        ("other algorithm", WebhookSignatureMismatch, 401),
        ("no timestamp", WebhookTimestampInvalid, 400),
        ("bad timestamp", WebhookTimestampInvalid, 400),
        ("stale", WebhookStale, 400),
        ("from the future", WebhookStale, 400),
        ("not json", WebhookInvalidJson, 400),
        ("not utf-8", WebhookInvalidJson, 400),
        ("a list", WebhookBadShape, 400),
        ("no session", WebhookBadShape, 400),
        ("payload not an object", WebhookBadShape, 400),
        ("timestamp a string", WebhookBadShape, 400),
    ],
)
def test_bad_webhooks_are_rejected(case: str, error: type[WebhookRejected], status: int) -> None:
    body = event_body()
    raw, headers = BAD_WEBHOOKS[case](body, signed(body))
    with pytest.raises(error) as caught:
        verify_webhook(raw, headers, key=HMAC_KEY)
    assert type(caught.value) is error and caught.value.status == status


def test_signature_is_checked_before_the_body_is_parsed() -> None:
    with pytest.raises(WebhookSignatureMismatch):
        verify_webhook(b"{not json", signed(b"other"), key=HMAC_KEY)
    stale_and_forged = signed(b"{}", ts=1)
    stale_and_forged["X-Webhook-Hmac"] = "ab" * 64
    with pytest.raises(WebhookSignatureMismatch):
        verify_webhook(b"{}", stale_and_forged, key=HMAC_KEY)


def test_freshness_window_is_adjustable() -> None:
    body = event_body()
    headers = signed(body, ts=1_000_000)
    assert verify_webhook(body, headers, key=HMAC_KEY, now_ms=1_250_000).id == "evt_01"
    with pytest.raises(WebhookStale):
        verify_webhook(body, headers, key=HMAC_KEY, now_ms=1_250_000, max_age_s=60)


async def test_messages_and_replays_verify_on_our_side(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    await linked(waha, gateway, receiver)
    payload = await waha.incoming_message(SESSION, "79001112233@c.us", "Баланс")
    event = await receiver.wait_for(lambda e: e.event == "message")
    assert event.payload == payload
    assert payload["from"] == "79001112233@c.us" and payload["fromMe"] is False
    assert payload["to"] == "79001234567@c.us" and payload["body"] == "Баланс"
    assert event.me_phone == "+79001234567" and event.metadata == METADATA

    assert await waha.resend_last_event() == 200
    assert await waha.resend_last_event(fresh_timestamp=True) == 200
    replays = [e for e in receiver.events if e.event == "message"]
    assert len(replays) == 3 and {e.id for e in replays} == {event.id}

    lid = await waha.incoming_message(SESSION, "111222333444555@lid", "hi", message_id="m-lid")
    assert lid["id"] == "m-lid" and phone_from_chat_id(lid["from"]) is None
    assert receiver.rejected == []


async def test_tampered_delivery_is_refused_by_our_side(
    waha: WahaEmulator, gateway: WahaGateway, receiver: Receiver
) -> None:
    """A receiver keyed differently refuses every event (401), and the emulator retries."""
    other_key = WahaGateway(waha.url, API_KEY, "a-different-hmac-key")
    strict = Receiver(other_key)
    await strict.start()
    waha.retry_delay = 0.01
    try:
        await gateway.ensure_session(SESSION, strict.url, METADATA)
        await asyncio.sleep(0.05)
        await waha.drain()
        assert strict.events == [] and strict.rejected
        assert all(isinstance(e, WebhookSignatureMismatch) for e in strict.rejected)
        first = waha.deliveries[0]
        assert first.status == 401
        retries = [d for d in waha.deliveries if d.body == first.body]
        assert len(retries) == waha.delivery_attempts
    finally:
        await strict.stop()
        await other_key.aclose()


# --- chat ids and settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chat_id", "phone"),
    [
        ("79001234567@c.us", "+79001234567"),
        ("79001234567:15@c.us", "+79001234567"),
        ("79001234567@s.whatsapp.net", "+79001234567"),
        ("111222333444555@lid", None),
        ("120363025246125486@g.us", None),
        ("status@broadcast", None),
        ("", None),
        (None, None),
        ("abc@c.us", None),
    ],
)
def test_phone_from_chat_id(chat_id: str | None, phone: str | None) -> None:
    assert phone_from_chat_id(chat_id) == phone


def test_chat_id_helpers() -> None:
    assert chat_id_for_phone("+79001234567") == "79001234567@c.us"
    assert chat_id_for_phone("79001234567") == "79001234567@c.us"
    for bad in ("", "+", "+7 900", "hello"):
        with pytest.raises(ValueError, match=r"E\.164"):
            chat_id_for_phone(bad)
    assert strip_device_suffix("79001234567:15@c.us") == "79001234567@c.us"
    assert strip_device_suffix("79001234567@c.us") == "79001234567@c.us"
    assert strip_device_suffix("111222:3@lid") == "111222@lid"


async def test_from_settings() -> None:
    def settings(**values: Any) -> Settings:
        base: dict[str, Any] = {
            "whatsapp_gateway_url": None,
            "whatsapp_gateway_api_key": None,
            "whatsapp_webhook_hmac_key": None,
        }
        return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]

    assert WahaGateway.from_settings(settings()) is None
    with pytest.raises(GatewayNotConfigured, match="WHATSAPP_GATEWAY_API_KEY"):
        WahaGateway.from_settings(settings(whatsapp_gateway_url="http://waha:3000"))
    with pytest.raises(GatewayNotConfigured, match="WHATSAPP_WEBHOOK_HMAC_KEY"):
        WahaGateway.from_settings(
            settings(whatsapp_gateway_url="http://waha:3000", whatsapp_gateway_api_key="k")
        )
    gw = WahaGateway.from_settings(
        settings(
            whatsapp_gateway_url="http://waha:3000/",
            whatsapp_gateway_api_key="k",
            whatsapp_webhook_hmac_key="h",
        )
    )
    assert gw is not None
    try:
        typed: WhatsAppGateway = gw
        assert repr(typed) == "WahaGateway('http://waha:3000')"
    finally:
        await gw.aclose()
