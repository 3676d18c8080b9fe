from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from core.settings import Settings
from tests.fakes.clock import FakeClock
from web.app import create_app
from web.keys import CLOCK, PART_STATES

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
        "state": "off",
        "reason": "off: TELEGRAM_BOT_TOKEN not set (the Telegram bot)",
    }


async def test_marketplace_health_shape(aiohttp_client: ClientFactory, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    body = await (await client.get("/marketplace/health")).json()
    assert set(body) == {"status", "environment", "services"}
    assert body["status"] == "ok" and body["environment"] == "development"
    assert body["services"]["database"] == {"state": "ok"}
    assert body["services"]["whatsapp"] == {
        "enabled": False,
        "state": "off",
        "reason": "off: WHATSAPP_GATEWAY_URL, WHATSAPP_GATEWAY_API_KEY, WHATSAPP_WEBHOOK_HMAC_KEY "
        "not set (the WhatsApp channel)",
    }


async def test_a_failing_part_degrades_both_health_answers_until_it_is_back(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    app = create_app(settings.model_copy(update={"yclients_partner_token": SecretStr("p")}))
    app[CLOCK] = clock.clock()
    client = await aiohttp_client(app)
    states = app[PART_STATES]
    on = {"enabled": True, "state": "ok", "reason": "on"}
    assert (await (await client.get("/health")).json())["parts"]["yclients"] == on

    states.failing("yclients", "cannot reach YClients", "ClientConnectorError: refused")
    clock.advance(30)
    states.failing("yclients", "cannot reach YClients", "TimeoutError: ")
    # A part that is off stays off, whatever is reported for it.
    states.failing("telegram", "cannot reach the Bot API", "refused")
    failing = {
        "enabled": True,
        "state": "failing",
        "reason": "cannot reach YClients",
        "error": "TimeoutError: ",
        "since": "2026-11-01T09:00:00Z",
    }
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "degraded"
    assert body["parts"]["yclients"] == failing
    assert body["parts"]["telegram"]["state"] == "off"
    response = await client.get("/marketplace/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "degraded"
    assert body["services"]["yclients"] == failing
    assert body["services"]["database"] == {"state": "ok"}

    states.ok("yclients")
    body = await (await client.get("/health")).json()
    assert body["status"] == "ok" and body["parts"]["yclients"] == on
    body = await (await client.get("/marketplace/health")).json()
    assert body["status"] == "ok" and body["services"]["yclients"] == on
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "core.health"]
    assert lines[0] == (
        "WARNING",
        "yclients is down: cannot reach YClients (ClientConnectorError: refused); "
        "retrying with backoff",
    )
    assert lines[-1] == ("INFO", "yclients is back (down since 2026-11-01T09:00:00Z)")
    assert len([line for line in lines if line[1].startswith("yclients")]) == 2


async def test_health_fails_with_503_when_the_database_is_gone(
    aiohttp_client: ClientFactory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import db

    async def broken() -> None:
        raise ConnectionRefusedError("database is down")

    client = await aiohttp_client(create_app(settings))
    monkeypatch.setattr(db, "ping", broken)
    # A failing channel does not hide the database: still 503, still "fail".
    client.app[PART_STATES].failing("whatsapp", "the WhatsApp gateway does not answer", "x")
    response = await client.get("/health")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "fail" and "database is down" in body["database"]["error"]
    response = await client.get("/marketplace/health")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "error"
    assert body["services"]["database"] == {
        "state": "failing",
        "reason": "the database cannot be reached",
        "error": "ConnectionRefusedError: database is down",
    }


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


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_marketplace_health_pings_redis_and_calls_an_unreachable_one_failing(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    client = await aiohttp_client(create_app(settings.model_copy(update={"redis_url": url})))
    body = await (await client.get("/marketplace/health")).json()
    redis = body["services"]["redis"]
    assert body["status"] == "degraded"
    assert redis["state"] == "failing"
    assert redis["reason"] == "the bot's conversation store cannot be reached"
    assert redis["error"].startswith("Redis at 127.0.0.1:") and url not in redis["error"]
    # /health tells the same from then on.
    assert (await (await client.get("/health")).json())["parts"]["redis"]["state"] == "failing"


async def test_marketplace_health_calls_a_malformed_redis_url_failing(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    app = create_app(settings.model_copy(update={"redis_url": "http://not-redis"}))
    client = await aiohttp_client(app)
    redis = (await (await client.get("/marketplace/health")).json())["services"]["redis"]
    assert redis["state"] == "failing" and "REDIS_URL is not a Redis URL" in redis["error"]


async def test_marketplace_health_calls_a_live_redis_ok(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    app = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"}))
    client = await aiohttp_client(app)
    body = await (await client.get("/marketplace/health")).json()
    assert body["services"]["redis"]["state"] == "ok"
