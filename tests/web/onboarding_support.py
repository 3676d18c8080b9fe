"""The marketplace onboarding test bench: the real app on a loopback port (so WAHA's webhooks
reach it at PUBLIC_BASE_URL), the YClients emulator and the WAHA emulator, and helpers to walk
a salon through the flow."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from core.inbox import InboxPolicy
from core.marketplace import encode_user_data
from core.models import Company, InboxEvent, InboxStatus
from core.settings import Settings
from tests.fakes.waha import WahaEmulator
from tests.fakes.yclients import PARTNER_TOKEN, USER_TOKEN, YClientsEmulator
from web.app import create_app
from web.keys import BODY_TIMEOUT, INBOX_POLICY, ONBOARDING_POLL_MS

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]

APP_ID = 4242
WAHA_KEY = "waha-api-key-for-tests-0123456789"
HMAC_KEY = "waha-hmac-key-for-tests-abcdefghijklmnop"
BOT = "salon_bonus_bot"
OWNER = {
    "id": 123456,
    "name": "Ирина Петрова",
    "email": "owner@salon.example",
    "phone": "79990009900",
    "is_approved": True,
    "salon_name": "Салон «Роза»",
}
FAST = InboxPolicy(
    lease=timedelta(seconds=2),
    max_attempts=3,
    retry_base=timedelta(milliseconds=20),
    retry_max=timedelta(milliseconds=50),
    poll_interval=0.05,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def signed_user_data(
    user: dict[str, Any] | None = None, partner_token: str = PARTNER_TOKEN
) -> tuple[str, str]:
    """(user_data, user_data_sign) as YClients sends them: URL-safe base64 without padding that
    does contain `-` or `_` (plain b64decode would drop those and break the signature)."""
    while True:
        # Two nonce lengths, so some length of any user's JSON is not a multiple of 3.
        body = {**(user or OWNER), "nonce": secrets.token_hex(3 + secrets.randbelow(2))}
        raw = json.dumps(body, ensure_ascii=False).encode()
        encoded = encode_user_data(raw)
        if ("-" in encoded or "_" in encoded) and len(raw) % 3:
            break
    return encoded, hmac.new(partner_token.encode(), raw, hashlib.sha256).hexdigest()


def redirect_query(
    salon_ids: list[int] | int,
    *,
    signed: bool = True,
    user: dict[str, Any] | None = None,
    sign: str | None = None,
) -> str:
    ids = [salon_ids] if isinstance(salon_ids, int) else salon_ids
    pairs: list[tuple[str, str]] = (
        [("salon_id", str(ids[0]))]
        if len(ids) == 1
        else [(f"salon_ids[{i}]", str(salon)) for i, salon in enumerate(ids)]
    )
    if signed:
        user_data, good_sign = signed_user_data(user)
        pairs += [("user_data", user_data), ("user_data_sign", sign or good_sign)]
    return urlencode(pairs)


@dataclass
class Bench:
    client: TestClient[Any, Any]
    yc: YClientsEmulator
    waha: WahaEmulator
    settings: Settings

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def url(self, path: str) -> str:
        return self.base_url + path

    async def redirect(self, salon_ids: list[int] | int, **kwargs: Any) -> Any:
        query = redirect_query(salon_ids, **kwargs)
        return await self.client.get(f"/auth/yclients/redirect?{query}", allow_redirects=False)

    def connect(self, salon_id: int) -> None:
        """The salon's owner presses Connect in the Marketplace (YClients knows the salon)."""
        if salon_id not in self.yc.companies:
            self.yc.add_company(salon_id, title=f"Салон {salon_id}")
        self.yc.press_connect(salon_id, APP_ID)

    async def register(self, salon_id: int, **kwargs: Any) -> str:
        """The owner presses Connect and comes through the redirect; the onboarding token."""
        self.connect(salon_id)
        response = await self.redirect(salon_id, **kwargs)
        assert response.status == 302, await response.text()
        return token_of(response.headers["Location"])

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def api(self, method: str, path: str, token: str, **kwargs: Any) -> tuple[int, Any]:
        response = await self.client.request(method, path, headers=self.bearer(token), **kwargs)
        return response.status, await response.json()

    async def link_whatsapp(self, salon_id: int, token: str, phone: str = "79001234567") -> None:
        status, body = await self.api("POST", "/marketplace/api/qr", token, json={})
        assert status == 200, body
        name = f"salon-{salon_id}"
        await until(lambda: self.waha.sessions[name].status == "SCAN_QR_CODE")
        await self.waha.scan(name, phone=phone)
        await self.waha.drain()

        async def linked() -> bool:
            return (await Company.get(yclients_id=salon_id)).whatsapp_connected

        await until(linked)

    async def activate(self, token: str) -> tuple[int, Any]:
        return await self.api("POST", "/marketplace/activate", token)

    async def lifecycle(self, salon_id: int, event: str, **extra: Any) -> int:
        body = {
            "salon_id": salon_id,
            "application_id": APP_ID,
            "event": event,
            "partner_token": PARTNER_TOKEN,
            **extra,
        }
        response = await self.client.post("/webhook/yclients", json=body)
        return response.status


def token_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/marketplace/onboarding", location
    return parse_qs(parts.query)["token"][0]


async def until(
    predicate: Callable[[], Any], within: float = 8.0, message: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"{message} not reached within {within} s"
        await asyncio.sleep(0.02)


async def settled(within: float = 8.0) -> None:
    """Until the inbox worker has handled every stored event."""

    async def drained() -> bool:
        return not await InboxEvent.filter(status=InboxStatus.PENDING).exists()

    await until(drained, within, "an empty inbox")


@asynccontextmanager
async def open_bench(
    aiohttp_client: ClientFactory,
    settings: Settings,
    *,
    poll_ms: int = 200,
    settings_update: dict[str, Any] | None = None,
    body_timeout: float | None = None,
    **waha_options: Any,
) -> AsyncIterator[Bench]:
    waha_options.setdefault("first_qr_lifetime", 60.0)
    waha_options.setdefault("qr_interval", 60.0)
    async with (
        YClientsEmulator() as yc,
        WahaEmulator(api_key=WAHA_KEY, **waha_options) as waha,
    ):
        port = free_port()
        configured = settings.model_copy(
            update={
                "http_port": port,
                "public_base_url": f"http://127.0.0.1:{port}",
                "yclients_api_url": yc.url,
                "yclients_partner_token": SecretStr(PARTNER_TOKEN),
                "yclients_user_token": SecretStr(USER_TOKEN),
                "yclients_rate_limit": 1000.0,
                "yclients_app_id": APP_ID,
                "whatsapp_gateway_url": waha.url,
                "whatsapp_gateway_api_key": SecretStr(WAHA_KEY),
                "whatsapp_webhook_hmac_key": SecretStr(HMAC_KEY),
                "telegram_bot_username": BOT,
                **(settings_update or {}),
            }
        )
        app = create_app(configured)
        app[INBOX_POLICY] = FAST
        app[ONBOARDING_POLL_MS] = poll_ms
        if body_timeout is not None:
            app[BODY_TIMEOUT] = body_timeout
        client = await aiohttp_client(app, server_kwargs={"port": port})
        try:
            yield Bench(client, yc, waha, configured)
        finally:
            await client.close()
