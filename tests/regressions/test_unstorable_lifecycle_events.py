"""Lifecycle events no database could ever store (a NUL or a lone surrogate in `event`, which
keys the inbox row; `NaN`/`Infinity`, which jsonb refuses) were answered 503, so YClients
would have retried them for ever. They are a 400 now, on both databases; 503 stays the answer
when the storage itself fails."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core import inbox
from core.models import InboxEvent
from core.settings import Settings
from tests.regressions.edge_support import SALON, Edge, lifecycle_event, open_edge
from tests.web.onboarding_support import ClientFactory

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def edge(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Edge]:
    async with open_edge(aiohttp_client, settings) as opened:
        yield opened


async def post(edge: Edge, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = await edge.bench.client.post("/webhook/yclients", data=body, headers=headers)
    return response.status, await response.json()


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(lifecycle_event(event="freeze\u0000")).encode(),
        json.dumps(lifecycle_event(event="\udc80freeze")).encode(),
        json.dumps(lifecycle_event(event="freeze", extra=float("nan"))).encode(),
        json.dumps(lifecycle_event(event="freeze", extra=float("inf"))).encode(),
        json.dumps(lifecycle_event(event="freeze", extra=float("-inf"))).encode(),
        json.dumps(lifecycle_event(event="freeze"))[:-1].encode() + b', "extra": 1e400}',
    ],
    ids=["nul", "surrogate", "nan", "infinity", "minus-infinity", "1e400"],
)
async def test_a_json_event_that_can_never_be_stored_is_400(edge: Edge, body: bytes) -> None:
    status, answer = await post(edge, body, JSON)
    assert status == 400, answer
    assert answer["ok"] is False and answer["error"]
    assert not await InboxEvent.exists()


async def test_a_form_event_with_a_nul_is_400(edge: Edge) -> None:
    form = f"salon_id={SALON}&application_id=4242&event=freeze%00&partner_token="
    status, _ = await post(edge, (form + edge.bench.yc.partner_token).encode(), FORM)
    assert status == 400
    assert not await InboxEvent.exists()


async def test_odd_characters_elsewhere_are_repaired_and_stored(edge: Edge) -> None:
    """Only `event` keys the row; a NUL or a lone surrogate anywhere else is replaced by
    U+FFFD and the delivery is stored."""
    body = json.dumps(lifecycle_event(event="freeze", note="a\u0000b\udc80c")).encode()
    status, answer = await post(edge, body, JSON)
    assert status == 200, answer
    stored = await InboxEvent.get(source="marketplace")
    assert stored.payload["note"] == "a\ufffdb\ufffdc"
    assert stored.payload["partner_token"] == "***"


async def test_a_storage_outage_is_still_503(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(*args: object, **kwargs: object) -> Any:
        raise ConnectionError("the database is away")

    monkeypatch.setattr(inbox, "store", down)
    status, answer = await post(edge, json.dumps(lifecycle_event()).encode(), JSON)
    assert (status, answer["error"]) == (503, "try again later")
