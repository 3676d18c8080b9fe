"""One app with every part on (YClients, WAHA, Telegram in webhook mode) and a salon with an
onboarding token and an api key: what the hostile-input tests at the HTTP edge post to."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from bot.telegram.dispatcher import webhook_token
from core import companies
from core.marketplace import issue_token
from core.models import Company, IntegrationStatus
from core.settings import Settings
from core.whatsapp import sign_webhook
from tests.fakes.telegram import TOKEN, FakeBotAPI, Person
from tests.fakes.yclients import PARTNER_TOKEN
from tests.web.onboarding_support import HMAC_KEY, Bench, ClientFactory, open_bench

TELEGRAM_SECRET = "path-secret-0123456789"
SALON = 777
SYNC_PATH = "/api/v1/yclients/sync-bookings"


@dataclass
class Edge:
    bench: Bench
    telegram: FakeBotAPI
    salon: Company
    onboarding_token: str
    api_key: str

    @property
    def telegram_path(self) -> str:
        return f"/webhook/telegram/{TELEGRAM_SECRET}"

    @property
    def telegram_header(self) -> str:
        return webhook_token(self.bench.settings)


@asynccontextmanager
async def open_edge(
    aiohttp_client: ClientFactory, settings: Settings, *, body_timeout: float | None = None
) -> AsyncIterator[Edge]:
    async with FakeBotAPI() as telegram:
        update = {
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_url": telegram.url,
            "telegram_mode": "webhook",
            "telegram_webhook_secret": SecretStr(TELEGRAM_SECRET),
        }
        async with open_bench(
            aiohttp_client, settings, settings_update=update, body_timeout=body_timeout
        ) as bench:
            api_key, digest = companies.new_api_key()
            salon = await Company.create(
                yclients_id=SALON,
                title="Салон",
                hook_token="hook-token-777",
                api_key_hash=digest,
                integration_status=IntegrationStatus.PENDING_WHATSAPP,
                whatsapp_session=f"salon-{SALON}",
            )
            bench.yc.add_company(SALON)
            assert bench.settings.secret_key is not None
            token = issue_token(bench.settings.secret_key.get_secret_value(), SALON, [SALON])
            yield Edge(bench, telegram, salon, token, api_key)


def waha_event(session: str = f"salon-{SALON}", **changes: Any) -> dict[str, Any]:
    return {
        "id": "evt_0001",
        "event": "session.status",
        "session": session,
        "timestamp": int(time.time() * 1000),
        "payload": {"status": "STARTING"},
        **changes,
    }


def waha_headers(body: bytes, **changes: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Webhook-Hmac": sign_webhook(body, HMAC_KEY),
        "X-Webhook-Hmac-Algorithm": "sha512",
        "X-Webhook-Timestamp": str(time.time_ns() // 1_000_000),
        **changes,
    }


def lifecycle_event(**changes: Any) -> dict[str, Any]:
    return {
        "salon_id": SALON,
        "application_id": 4242,
        "event": "freeze",
        "partner_token": PARTNER_TOKEN,
        **changes,
    }


def telegram_update() -> bytes:
    return json.dumps(Person(7001).says("/start")).encode()
