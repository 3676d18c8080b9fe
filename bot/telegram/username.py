"""The bot's own username, for the deep links a salon hands out.

A plain HTTP `getMe` (not aiogram's Bot): the onboarding page and the CLI need the name even
when no bot runs in this process.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)


class BotUsername:
    """The Telegram bot's username for deep links: TELEGRAM_BOT_USERNAME, else asked once from
    the Bot API (`getMe`) and remembered; None without a bot."""

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._transport = transport
        self._known: str | None = settings.telegram_bot_username or None
        self._next_try = 0.0

    async def get(self) -> str | None:
        token = self._settings.telegram_bot_token
        if self._known or token is None or time.monotonic() < self._next_try:
            return self._known
        url = f"{self._settings.telegram_api_url}/bot{token.get_secret_value()}/getMe"
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
                data = (await http.get(url)).json()
            username = data.get("result", {}).get("username") if isinstance(data, dict) else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("Telegram getMe failed (%s); set TELEGRAM_BOT_USERNAME", type(exc).__name__)
            username = None
        if isinstance(username, str) and username:
            self._known = username
        else:
            # Do not ask Telegram on every page view while it keeps failing.
            self._next_try = time.monotonic() + 300
        return self._known
