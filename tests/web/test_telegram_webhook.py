"""The bot inside the web process: webhook mode, the bot off, a wrong token, the FSM storage."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bot.telegram.dispatcher import build_storage, webhook_token
from core.checks import check_telegram
from core.models import Company, IntegrationStatus
from core.settings import Settings
from tests.fakes.telegram import TOKEN, FakeBotAPI, Person
from tests.web.onboarding_support import until
from web.app import create_app
from web.keys import TELEGRAM

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
SECRET = "path-secret-0123456789"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


def with_bot(settings: Settings, api: FakeBotAPI, **changes: Any) -> Settings:
    return settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_url": api.url,
            "public_base_url": "https://bot.example",
            **changes,
        }
    )


async def test_webhook_mode_sets_the_webhook_and_checks_both_secrets(
    aiohttp_client: ClientFactory, settings: Settings, telegram: FakeBotAPI
) -> None:
    hooked = with_bot(
        settings, telegram, telegram_mode="webhook", telegram_webhook_secret=SecretStr(SECRET)
    )
    http = await aiohttp_client(create_app(hooked))
    # Registered in the background (retried while Telegram is unreachable).
    set_webhook = await telegram.wait_for("setWebhook")
    assert len(telegram.calls_to("setWebhook")) == 1
    assert set_webhook.params["url"] == f"https://bot.example/webhook/telegram/{SECRET}"
    token = webhook_token(hooked)
    assert set_webhook.params["secret_token"] == token
    assert not telegram.calls_to("deleteWebhook")  # no polling in webhook mode

    await Company.create(
        yclients_id=555,
        title="Салон Ромашка",
        hook_token=secrets.token_urlsafe(16),
        integration_status=IntegrationStatus.ACTIVE,
    )
    update = Person(7001).says("/start salon-555")
    good = {"X-Telegram-Bot-Api-Secret-Token": token}
    assert (await http.post("/webhook/telegram/wrong", json=update, headers=good)).status == 404
    path = f"/webhook/telegram/{SECRET}"
    assert (await http.post(path, json=update)).status == 403
    bad = {"X-Telegram-Bot-Api-Secret-Token": "x" * 64}
    assert (await http.post(path, json=update, headers=bad)).status == 403
    assert (await http.post(path, data=b"{nope", headers=good)).status == 400
    assert not telegram.calls_to("sendMessage")
    response = await http.post(path, json=update, headers=good)
    assert response.status == 200
    (sent, *_rest) = telegram.calls_to("sendMessage")
    assert sent.params["chat_id"] == 7001 and "Салон Ромашка" in sent.params["text"]


async def test_without_a_token_the_bot_is_off_with_one_log_line(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(settings)
    http = await aiohttp_client(app)
    assert app[TELEGRAM] is None
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("telegram")] == [
        "telegram off: TELEGRAM_BOT_TOKEN not set (the Telegram bot)"
    ]
    update = Person(7001).says("/start")
    assert (await http.post(f"/webhook/telegram/{SECRET}", json=update)).status == 404
    assert (await http.get("/health")).status == 200


async def test_a_wrong_token_stops_polling_but_not_the_process(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeBotAPI(token="987654321:" + "B" * 35) as other:
        http = await aiohttp_client(create_app(with_bot(settings, other)))

        def stopped() -> bool:
            return any(r.getMessage().startswith("telegram is down") for r in caplog.records)

        await until(stopped, message="the bot giving up on a refused token")
        response = await http.get("/health")
        assert response.status == 200
        part = (await response.json())["parts"]["telegram"]
        assert part["state"] == "failing" and "@BotFather" in part["reason"]
        assert part["error"].startswith("TelegramUnauthorizedError")
        (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("telegram")]
        assert line.endswith("; not retried")  # waiting cannot fix a token
        assert not other.calls_to("deleteWebhook")


def test_the_fsm_lives_in_redis_when_redis_url_is_set(settings: Settings) -> None:
    assert isinstance(build_storage(settings), MemoryStorage)
    redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"})
    storage = build_storage(redis)
    assert isinstance(storage, RedisStorage)


async def test_check_asks_telegram_who_the_bot_is(settings: Settings, telegram: FakeBotAPI) -> None:
    ok = await check_telegram(with_bot(settings, telegram))
    assert (ok.status, ok.detail) == ("ok", "@salonbot_test_bot, polling mode")
    wrong = with_bot(settings, telegram, telegram_bot_token=SecretStr("987654321:" + "B" * 35))
    refused = await check_telegram(wrong)
    assert refused.status == "fail" and "BotFather" in refused.fix
    gone = with_bot(settings, telegram, telegram_api_url="http://127.0.0.1:9")
    assert (await check_telegram(gone)).status == "fail"
