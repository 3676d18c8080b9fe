"""bot.telegram.username: the bot's username for deep links, from the setting or `getMe`."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from bot.telegram.username import BotUsername
from core.settings import Settings


async def test_bot_username_from_the_setting_or_getme_once() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200, json={"ok": True, "result": {"username": "from_getme_bot"}})

    token = "123456:" + "A" * 35
    configured = Settings(_env_file=None, telegram_bot_username="@named_bot")  # type: ignore[call-arg]
    assert await BotUsername(configured).get() == "named_bot"
    with_token = Settings(_env_file=None, telegram_bot_token=SecretStr(token))  # type: ignore[call-arg]
    names = BotUsername(with_token, transport=httpx.MockTransport(handler))
    assert await names.get() == "from_getme_bot"
    assert await names.get() == "from_getme_bot"
    assert calls == [f"/bot{token}/getMe"]
    assert await BotUsername(Settings(_env_file=None)).get() is None  # type: ignore[call-arg]
