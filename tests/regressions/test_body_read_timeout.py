"""A request that announced a body and never sent it held its connection (and its handler)
for as long as the sender liked. Every body is now read within the app's BODY_TIMEOUT
(web.edge.read_body) and the answer is 408, closing the connection. The timeout is injected
small here; nothing waits for wall-clock time beyond it."""

from __future__ import annotations

import ast
import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.models import InboxEvent
from core.settings import Settings
from tests.regressions.edge_support import Edge, open_edge
from tests.web.onboarding_support import ClientFactory
from tests.web.raw_http import GUARD, read_response, request_bytes

WEB = Path(__file__).resolve().parents[2] / "web"


@pytest.fixture
async def edge(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Edge]:
    async with open_edge(aiohttp_client, settings, body_timeout=0.2) as opened:
        yield opened


def routes(edge: Edge) -> list[tuple[str, list[tuple[str, bytes | str]]]]:
    bearer: list[tuple[str, bytes | str]] = [("Authorization", f"Bearer {edge.onboarding_token}")]
    return [
        (f"/webhook/yclients/{edge.salon.hook_token}", []),
        ("/webhook/yclients", []),
        ("/webhook/whatsapp", []),
        (edge.telegram_path, [("X-Telegram-Bot-Api-Secret-Token", edge.telegram_header)]),
        ("/marketplace/api/qr", bearer),
        ("/marketplace/api/pairing-code", bearer),
    ]


async def test_a_body_that_never_arrives_is_408_on_every_route(edge: Edge) -> None:
    for path, headers in routes(edge):
        for sent in (b"", b'{"company_id": '):
            data = request_bytes(
                "POST",
                path,
                [("Content-Type", "application/json"), *headers],
                sent,
                content_length=1000,
            )
            async with asyncio.timeout(GUARD):
                reader, writer = await asyncio.open_connection(
                    edge.bench.client.host, edge.bench.client.port
                )
                try:
                    writer.write(data)
                    await writer.drain()
                    response = await read_response(reader)
                finally:
                    writer.close()
            assert response.status == 408, (path, sent, response)
            assert response.headers.get("connection", "").lower() == "close", path
    assert not await InboxEvent.exists()
    assert not edge.bench.waha.sessions


async def test_a_chunked_body_that_stops_is_408(edge: Edge) -> None:
    head = (
        f"POST /webhook/yclients/{edge.salon.hook_token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    async with asyncio.timeout(GUARD):
        reader, writer = await asyncio.open_connection(
            edge.bench.client.host, edge.bench.client.port
        )
        try:
            writer.write(head + b'5\r\n{"com\r\n')
            await writer.drain()
            response = await read_response(reader)
        finally:
            writer.close()
    assert response.status == 408


async def test_a_sender_that_hangs_up_mid_body_is_no_server_error(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    data = request_bytes(
        "POST",
        "/webhook/whatsapp",
        [("Content-Type", "application/json")],
        b'{"id": ',
        content_length=1000,
    )
    async with asyncio.timeout(GUARD):
        reader, writer = await asyncio.open_connection(
            edge.bench.client.host, edge.bench.client.port
        )
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        # The server answers or closes; either way the read ends.
        await reader.read()
    # A request that reached the app afterwards proves the hung-up one was dealt with.
    response = await edge.bench.client.get("/health")
    assert response.status in (200, 503)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_handlers_read_bodies_only_through_web_edge() -> None:
    """So the timeout, the size limits and the one JSON decoder hold for every route."""
    reads = {"read", "json", "text", "post", "content", "multipart"}
    offenders = []
    for path in sorted(WEB.glob("*.py")):
        if path.name == "edge.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in reads
                and isinstance(node.value, ast.Name)
                and node.value.id == "request"
            ):
                offenders.append(f"{path.name}:{node.lineno} request.{node.attr}")
    assert offenders == []
