"""Telegram unreachable at start: the bot retries with backoff on the test's clock, /health says
`failing` meanwhile, and the bot answers once the Bot API is back (issue 12)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from core.settings import Settings
from tests.fakes.clock import FakeClock
from tests.fakes.telegram import TOKEN, FakeBotAPI, Person
from tests.web.onboarding_support import until
from web.app import create_app
from web.keys import BACKOFF, CLOCK

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def channel_lines(caplog: pytest.LogCaptureFixture, name: str) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.getMessage().startswith((f"{name} is down", f"{name} is back"))
    ]


async def test_telegram_down_at_start_answers_within_the_backoff_cap_once_it_is_back(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    telegram = FakeBotAPI()
    telegram.reserve()
    clock = FakeClock()
    polling = settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_url": telegram.url,
            "telegram_mode": "polling",
        }
    )
    app = create_app(polling)
    app[CLOCK] = clock.clock()
    cap = app[BACKOFF].cap
    http = await aiohttp_client(app)
    try:
        # getMe was refused; the bot waits on the test's clock, and the app serves meanwhile.
        await clock.next_sleep()
        response = await http.get("/health")
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "degraded"
        part = body["parts"]["telegram"]
        assert part["state"] == "failing" and part["enabled"] is True
        assert part["reason"] == "cannot reach the Bot API"
        assert part["error"].startswith("getMe: TelegramNetworkError")
        assert part["since"] == "2026-11-01T09:00:00Z"

        # Still down for 5 s: more attempts, each waiting longer, none logged again.
        while clock.elapsed < 5:
            clock.advance(await clock.next_sleep())
            await clock.next_sleep()
        attempts = len(clock.slept)
        assert attempts >= 3 and clock.slept == sorted(clock.slept)
        ((level, line),) = channel_lines(caplog, "telegram")
        assert level == logging.WARNING
        assert line.startswith("telegram is down: cannot reach the Bot API (getMe: ")
        assert line.endswith("); retrying with backoff")

        await telegram.start()
        waited = await clock.next_sleep()
        assert waited <= cap
        clock.advance(waited)
        await telegram.wait_for("deleteWebhook")
        anna = Person(7001)
        telegram.push(anna.says("/start"))
        await telegram.wait_for("sendMessage", lambda call: call.params["chat_id"] == anna.id)

        body = await (await http.get("/health")).json()
        assert body["status"] == "ok"
        assert body["parts"]["telegram"] == {"enabled": True, "state": "ok", "reason": "on"}
        lines = channel_lines(caplog, "telegram")
        assert [level for level, _ in lines] == [logging.WARNING, logging.INFO]
        assert lines[1][1] == "telegram is back (down since 2026-11-01T09:00:00Z)"
        assert all(delay <= cap for delay in clock.slept)
        assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.INFO)
    finally:
        await http.close()
        await telegram.close()


async def test_webhook_registration_is_retried_until_telegram_answers(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    telegram = FakeBotAPI()
    telegram.reserve()
    clock = FakeClock()
    hooked = settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_url": telegram.url,
            "telegram_mode": "webhook",
            "telegram_webhook_secret": SecretStr("path-secret-0123456789"),
            "public_base_url": "https://bot.example",
        }
    )
    app = create_app(hooked)
    app[CLOCK] = clock.clock()
    http = await aiohttp_client(app)
    try:
        clock.advance(await clock.next_sleep())
        waited = await clock.next_sleep()
        body = await (await http.get("/health")).json()
        assert body["parts"]["telegram"]["state"] == "failing"
        await telegram.start()
        clock.advance(waited)
        await telegram.wait_for("setWebhook")

        async def healthy() -> bool:
            body = await (await http.get("/health")).json()
            return bool(body["status"] == "ok" and body["parts"]["telegram"]["state"] == "ok")

        await until(healthy, message="telegram ok in /health")
    finally:
        await http.close()
        await telegram.close()
