"""Webhook ingest (size cap → store → count → wake → 503) was written three times with three
body limits (64 KiB lifecycle, 256 KiB YClients hook, 512 KiB WAHA; 1 MiB Telegram). Every
webhook now goes through web.ingest with one cap, WEBHOOK_MAX_BODY, enforced while a chunked
body (no Content-Length) arrives: past the cap the answer is 413 and nothing is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from core.models import InboxEvent
from core.settings import Settings
from tests.regressions.edge_support import Edge, open_edge
from tests.web.onboarding_support import ClientFactory
from web.ingest import WEBHOOK_MAX_BODY

# A JSON object just past the cap, and one just under it.
PAD = len(json.dumps({"pad": ""}))
OVER = json.dumps({"pad": "x" * (WEBHOOK_MAX_BODY + 1 - PAD)}).encode()
UNDER = json.dumps({"pad": "x" * (WEBHOOK_MAX_BODY - PAD)}).encode()


@pytest.fixture
async def edge(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Edge]:
    async with open_edge(aiohttp_client, settings) as opened:
        yield opened


def chunked(body: bytes) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    return chunks()


def paths(edge: Edge) -> dict[str, dict[str, str]]:
    telegram = {"X-Telegram-Bot-Api-Secret-Token": edge.telegram_header}
    return {
        f"/webhook/yclients/{edge.salon.hook_token}": {},
        "/webhook/yclients": {},
        "/webhook/whatsapp": {},
        edge.telegram_path: telegram,
    }


async def test_every_webhook_has_the_one_cap_on_chunked_bodies(edge: Edge) -> None:
    assert len(OVER) == WEBHOOK_MAX_BODY + 1 and len(UNDER) == WEBHOOK_MAX_BODY
    for path, headers in paths(edge).items():
        response = await edge.bench.client.post(
            path, data=chunked(OVER), headers={"Content-Type": "application/json", **headers}
        )
        assert response.status == 413, path
        assert str(WEBHOOK_MAX_BODY) in (await response.json())["error"], path
        # At the cap the body is read and judged on what it says (each route refuses it
        # for its own reason), never for its size.
        response = await edge.bench.client.post(
            path, data=chunked(UNDER), headers={"Content-Type": "application/json", **headers}
        )
        assert response.status not in (413, 500), path
    assert not await InboxEvent.exists()
