"""A credential header carrying bytes that are not UTF-8 (or not ASCII) was a 500 without any
credential: aiohttp hands such a header over as a string with lone surrogates, which
`.encode()` refuses. Every credential check now refuses it with 401/403 like any wrong one.
Sent over a bare socket: aiohttp's client will not send such bytes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from core.models import Company, InboxEvent
from core.settings import Settings
from tests.regressions.edge_support import (
    SYNC_PATH,
    Edge,
    open_edge,
    telegram_update,
    waha_event,
    waha_headers,
)
from tests.web.onboarding_support import ClientFactory
from tests.web.raw_http import exchange, request_bytes

NOT_UTF8 = b"\xff\xfe\x80"
NOT_ASCII = "секрет".encode()


@pytest.fixture
async def edge(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Edge]:
    async with open_edge(aiohttp_client, settings) as opened:
        yield opened


@pytest.mark.parametrize("junk", [NOT_UTF8, NOT_ASCII], ids=["not-utf8", "not-ascii"])
async def test_a_whatsapp_hmac_header_that_is_not_ascii_is_401(edge: Edge, junk: bytes) -> None:
    body = json.dumps(waha_event()).encode()
    headers: list[tuple[str, bytes | str]] = list(waha_headers(body).items())
    headers = [(k, v if k != "X-Webhook-Hmac" else junk * 40) for k, v in headers]
    response = await exchange(
        edge.bench.client, request_bytes("POST", "/webhook/whatsapp", headers, body)
    )
    assert response.status == 401, response
    # A good signature beside a timestamp that is not ASCII: 400, still no 500.
    headers = [
        (k, v if k != "X-Webhook-Timestamp" else junk) for k, v in waha_headers(body).items()
    ]
    response = await exchange(
        edge.bench.client, request_bytes("POST", "/webhook/whatsapp", headers, body)
    )
    assert response.status == 400, response
    assert not await InboxEvent.exists()


@pytest.mark.parametrize("junk", [NOT_UTF8, NOT_ASCII], ids=["not-utf8", "not-ascii"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/marketplace/api/qr"),
        ("GET", "/marketplace/api/status"),
        ("POST", "/marketplace/api/pairing-code"),
        ("POST", "/marketplace/activate"),
        ("POST", SYNC_PATH),
    ],
)
async def test_a_bearer_token_that_is_not_ascii_is_401(
    edge: Edge, junk: bytes, method: str, path: str
) -> None:
    token = edge.api_key if path == SYNC_PATH else edge.onboarding_token
    for authorization in (
        b"Bearer " + junk,
        b"Bearer " + token.encode() + junk,
        junk + b" " + token.encode(),
    ):
        headers: list[tuple[str, bytes | str]] = [("Authorization", authorization)]
        response = await exchange(edge.bench.client, request_bytes(method, path, headers))
        assert response.status == 401, (authorization, response)
        assert response.headers["www-authenticate"].startswith("Bearer")
    # The right token still opens it.
    good: list[tuple[str, bytes | str]] = [("Authorization", f"Bearer {token}")]
    response = await exchange(edge.bench.client, request_bytes(method, path, good))
    assert response.status not in (401, 500), response
    salon = await Company.get(id=edge.salon.id)
    assert salon.integration_status == edge.salon.integration_status


@pytest.mark.parametrize("junk", [NOT_UTF8, NOT_ASCII], ids=["not-utf8", "not-ascii"])
async def test_a_telegram_secret_header_that_is_not_ascii_is_403(edge: Edge, junk: bytes) -> None:
    body = telegram_update()
    for value in (junk, edge.telegram_header.encode() + junk):
        headers: list[tuple[str, bytes | str]] = [
            ("Content-Type", "application/json"),
            ("X-Telegram-Bot-Api-Secret-Token", value),
        ]
        response = await exchange(
            edge.bench.client, request_bytes("POST", edge.telegram_path, headers, body)
        )
        assert response.status == 403, response
    assert not edge.telegram.calls_to("sendMessage")


@pytest.mark.parametrize(
    "path",
    [
        b"/webhook/telegram/\xff\xfe",
        b"/webhook/telegram/%FF%FE",
        "/webhook/telegram/секрет".encode(),
    ],
)
async def test_a_telegram_path_secret_that_is_not_ascii_is_404(edge: Edge, path: bytes) -> None:
    headers = (
        f"Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: {edge.telegram_header}"
    )
    body = telegram_update()
    data = (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + headers.encode()
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    response = await exchange(edge.bench.client, data)
    assert response.status in (400, 404), response
    assert not edge.telegram.calls_to("sendMessage")
