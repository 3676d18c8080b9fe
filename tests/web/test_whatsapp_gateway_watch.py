"""The WhatsApp gateway down and back: the watch retries with backoff on the test's clock,
/health follows it, and the log says it once each way (issue 12)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from core.settings import Settings
from tests.fakes.clock import FakeClock
from tests.fakes.waha import WahaEmulator
from web.app import create_app
from web.keys import CLOCK
from web.whatsapp_channel import GATEWAY_CHECK_EVERY

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


async def test_the_gateway_going_down_and_back_shows_in_health_and_logs_once_each_way(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    async with WahaEmulator(api_key="waha-key") as waha:
        configured = settings.model_copy(
            update={
                "whatsapp_gateway_url": waha.url,
                "whatsapp_gateway_api_key": SecretStr("waha-key"),
                "whatsapp_webhook_hmac_key": SecretStr("h" * 32),
            }
        )
        app = create_app(configured)
        app[CLOCK] = clock.clock()
        client = await aiohttp_client(app)

        async def whatsapp() -> dict[str, Any]:
            body = await (await client.get("/health")).json()
            part: dict[str, Any] = body["parts"]["whatsapp"]
            return {"status": body["status"], **part}

        assert await clock.next_sleep() == GATEWAY_CHECK_EVERY
        assert (await whatsapp())["state"] == "ok"

        waha.fail_next(3, status=503)
        clock.advance(GATEWAY_CHECK_EVERY)
        waits = []
        for _ in range(3):
            waits.append(await clock.next_sleep())
            seen = await whatsapp()
            assert seen["status"] == "degraded" and seen["state"] == "failing"
            assert seen["reason"] == "the WhatsApp gateway does not answer"
            assert (
                seen["error"] == "GatewayUnavailable: GET /api/sessions: the gateway answered 503"
            )
            assert seen["since"] == "2026-11-01T09:01:00Z"
            clock.advance(waits[-1])
        assert waits == [1.0, 2.0, 4.0]
        # Back: asked again only after the regular interval.
        assert await clock.next_sleep() == GATEWAY_CHECK_EVERY
        assert (await whatsapp()) == {
            "status": "ok",
            "enabled": True,
            "state": "ok",
            "reason": "on",
        }
        pings = [c for c in waha.calls if c.path == "/api/sessions"]
        assert len(pings) == 5  # one each attempt: the watch backs off by itself

        lines = [
            (r.levelno, r.getMessage())
            for r in caplog.records
            if r.getMessage().startswith("whatsapp is")
        ]
        assert lines == [
            (
                logging.WARNING,
                "whatsapp is down: the WhatsApp gateway does not answer (GatewayUnavailable: "
                "GET /api/sessions: the gateway answered 503); retrying with backoff",
            ),
            (logging.INFO, "whatsapp is back (down since 2026-11-01T09:01:00Z)"),
        ]
        await client.close()
