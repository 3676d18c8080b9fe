from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.settings import Settings
from web.app import create_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


async def test_health_reports_database_migrations_and_parts(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["migrations"] == {"current": True, "pending": []}
    assert body["parts"]["telegram"] == {
        "enabled": False,
        "reason": "off: TELEGRAM_BOT_TOKEN not set (the Telegram bot)",
    }


async def test_marketplace_health_shape(aiohttp_client: ClientFactory, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    body = await (await client.get("/marketplace/health")).json()
    assert set(body) == {"status", "environment", "services"}
    assert body["status"] == "ok" and body["environment"] == "development"
    assert body["services"]["database"] == "ok"
    assert body["services"]["whatsapp"] == "disabled"


async def test_health_fails_with_503_when_the_database_is_gone(
    aiohttp_client: ClientFactory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import db

    async def broken() -> None:
        raise ConnectionRefusedError("database is down")

    client = await aiohttp_client(create_app(settings))
    monkeypatch.setattr(db, "ping", broken)
    response = await client.get("/health")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "fail" and "database is down" in body["database"]["error"]


async def test_metrics_count_requests_per_route_pattern(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    for _ in range(3):
        await client.get("/health")
    await client.get("/no/such/secret-token-path")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert 'salonbot_http_requests_total{method="GET",route="/health",status="200"} 3.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "secret-token-path" not in text
    assert 'salonbot_http_request_duration_seconds_count{method="GET",route="/health"} 3.0' in text
