"""The composition root sets each app key once (STYLE.md, aiohttp's "polls" demo): the chat
channels and their notice router are built by one context, and nothing replaces or edits
another context's object."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bot.notifier import RoutingNotifier
from core.settings import Settings
from tests.fakes.telegram import TOKEN, FakeBotAPI
from tests.fakes.waha import WahaEmulator
from web import keys
from web.app import create_app
from web.keys import NOTIFIER, OUTBOUND, TELEGRAM, WHATSAPP_BOT

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
WEB = Path(__file__).resolve().parents[2] / "web"


def key_assignments() -> Counter[str]:
    """How many places in web/ assign each key of web.keys (`app[KEY] = …`)."""
    names = {name for name in vars(keys) if name.isupper()}
    found: Counter[str] = Counter()
    for path in WEB.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.slice, ast.Name)
                    and target.slice.id in names
                ):
                    found[target.slice.id] += 1
    return found


def test_every_app_key_is_assigned_in_one_place() -> None:
    assigned = key_assignments()
    assert assigned["NOTIFIER"] == 1
    assert {key: n for key, n in assigned.items() if n > 1} == {}


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


async def test_both_bots_tell_clients_through_the_one_notice_router(
    aiohttp_client: ClientFactory, settings: Settings, telegram: FakeBotAPI
) -> None:
    async with WahaEmulator() as waha:
        both = settings.model_copy(
            update={
                "telegram_bot_token": SecretStr(TOKEN),
                "telegram_api_url": telegram.url,
                "telegram_mode": "polling",
                "whatsapp_gateway_url": waha.url,
                "whatsapp_gateway_api_key": SecretStr(waha.api_key),
                "whatsapp_webhook_hmac_key": SecretStr("h" * 32),
            }
        )
        client = await aiohttp_client(create_app(both))
        app = client.app
        notifier = app[NOTIFIER]
        assert isinstance(notifier, RoutingNotifier)
        # One Outbound under the notices, the dialog and the rest (OUTBOUND), Telegram first.
        assert notifier.outbound is app[OUTBOUND]
        assert list(app[OUTBOUND].channels) == ["telegram", "whatsapp"]
        running, channel = app[TELEGRAM], app[WHATSAPP_BOT]
        assert running is not None and channel is not None
        assert running.dialog.notifier is notifier and channel.dialog.notifier is notifier
        assert running.dialog.outbound is app[OUTBOUND] is channel.dialog.outbound
        await client.close()
