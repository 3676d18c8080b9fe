"""The demo on a loopback port, as `salonbot demo` builds it (web.demo), on the test database,
and helpers to talk to its JSON API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from core.settings import Settings
from tests.web.onboarding_support import FAST, ClientFactory, free_port
from web.app import create_app
from web.demo.app import demo_settings
from web.demo.yclients import DemoYClients
from web.keys import INBOX_POLICY


@dataclass
class DemoBench:
    client: TestClient[Any, Any]
    yclients: DemoYClients
    base_url: str
    seen: int = 0

    async def say(self, role: str, text: str) -> list[dict[str, Any]]:
        response = await self.client.post("/demo/api/message", json={"role": role, "text": text})
        assert response.status == 200, await response.text()
        replies: list[dict[str, Any]] = (await response.json())["replies"]
        return replies

    async def act(self, action: str) -> dict[str, Any]:
        response = await self.client.post("/demo/api/yclients", json={"action": action})
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer

    async def messages(self, wait: float = 0) -> list[dict[str, Any]]:
        """The log's messages not seen yet (a long poll of up to `wait` seconds)."""
        response = await self.client.get(f"/demo/api/messages?after={self.seen}&wait={wait}")
        assert response.status == 200, await response.text()
        found: list[dict[str, Any]] = (await response.json())["messages"]
        if found:
            self.seen = found[-1]["id"]
        return found

    async def notice(self, role: str, within: float = 20.0) -> dict[str, Any]:
        """The next notice to `role`, waiting on the log (no sleeping); `within` is a hang
        guard, not a speed bound."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for message in await self.messages(wait=2):
                if message["role"] == role and message.get("notice"):
                    return message
        raise AssertionError(f"no notice to {role} within {within} s")


@asynccontextmanager
async def open_demo(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[DemoBench]:
    yclients = DemoYClients()
    port = free_port()
    configured = demo_settings(
        settings.model_copy(
            update={"http_port": port, "public_base_url": f"http://127.0.0.1:{port}"}
        ),
        yclients,
    )
    app = create_app(configured, demo=yclients)
    app[INBOX_POLICY] = FAST
    client = await aiohttp_client(app, server_kwargs={"port": port})
    try:
        yield DemoBench(client, yclients, f"http://127.0.0.1:{port}")
    finally:
        await client.close()
