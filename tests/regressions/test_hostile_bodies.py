"""Hostile bodies after authentication were 500s: JSON nested 100,000 deep (RecursionError), a
Content-Type charset no codec has (LookupError from aiohttp's request.json()), a salon id
beyond 64 bits, a NUL or a lone surrogate in WAHA's `session`, a 5,000-digit timestamp. Each is
a 400 now and nothing is stored; every body goes through core.jsonbody, the one decoder."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.jsonbody import MAX_DEPTH
from core.models import InboxEvent
from core.settings import Settings
from tests.fakes.yclients import PARTNER_TOKEN
from tests.regressions.edge_support import (
    Edge,
    lifecycle_event,
    open_edge,
    telegram_update,
    waha_event,
    waha_headers,
)
from tests.web.onboarding_support import ClientFactory

DEEP = b"[" * 100_000 + b"]" * 100_000
# Under the onboarding API's 16 KiB limit, still far deeper than the decoder can recurse.
DEEP_SMALL = b"[" * 15_000
DEEP_IN_OBJECT = b'{"restart": true, "phone": "+79001234567", "x": ' + DEEP_SMALL + b"}"
JSON = {"Content-Type": "application/json"}
NO_SUCH_CHARSET = {"Content-Type": "application/json; charset=nope"}


@pytest.fixture
async def edge(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Edge]:
    async with open_edge(aiohttp_client, settings) as opened:
        yield opened


async def post(edge: Edge, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    response = await edge.bench.client.post(path, data=body, headers=headers)
    text = await response.text()
    assert response.status != 500, text
    return response.status, text


def bearer(edge: Edge, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {edge.onboarding_token}", **JSON, **more}


async def test_deep_json_is_400_everywhere(edge: Edge) -> None:
    telegram = {"X-Telegram-Bot-Api-Secret-Token": edge.telegram_header, **JSON}
    assert (await post(edge, edge.telegram_path, DEEP, telegram))[0] == 400
    for path in ("/marketplace/api/qr", "/marketplace/api/pairing-code"):
        for body in (DEEP_SMALL, DEEP_IN_OBJECT):
            assert (await post(edge, path, body, bearer(edge)))[0] == 400, path
    assert (await post(edge, "/webhook/whatsapp", DEEP, waha_headers(DEEP)))[0] == 400
    assert (await post(edge, "/webhook/yclients", DEEP_SMALL, JSON))[0] == 400
    hook = f"/webhook/yclients/{edge.salon.hook_token}"
    assert (await post(edge, hook, DEEP, JSON))[0] == 400
    assert not await InboxEvent.exists()
    assert not edge.bench.waha.sessions
    assert not edge.telegram.calls_to("sendMessage")


async def test_the_depth_limit_is_the_same_for_every_body(edge: Edge) -> None:
    """32 levels are read, 33 are refused: one decoder, one limit."""

    def nested(levels: int) -> dict[str, Any]:
        inner: Any = []
        for _ in range(levels - 2):
            inner = [inner]
        return {"x": inner}

    assert MAX_DEPTH == 32
    for levels, taken in ((MAX_DEPTH, True), (MAX_DEPTH + 1, False)):
        event = waha_event(
            id=f"evt_depth_{levels}", payload={"status": "STARTING", **nested(levels - 1)}
        )
        body = json.dumps(event).encode()
        status, text = await post(edge, "/webhook/whatsapp", body, waha_headers(body))
        assert (status == 200) is taken, (levels, text)
        lifecycle = json.dumps(lifecycle_event(extra=nested(levels - 1))).encode()
        status, text = await post(edge, "/webhook/yclients", lifecycle, JSON)
        assert (status == 200) is taken, (levels, text)


async def test_a_charset_no_codec_has_is_ignored_as_json_asks(edge: Edge) -> None:
    """RFC 8259 defines no charset for application/json: the bytes decide. A valid body is
    taken, an invalid one is a 400, never the LookupError's 500."""
    telegram = {"X-Telegram-Bot-Api-Secret-Token": edge.telegram_header, **NO_SUCH_CHARSET}
    assert (await post(edge, edge.telegram_path, telegram_update(), telegram))[0] == 200
    assert (await post(edge, edge.telegram_path, b"{nope", telegram))[0] == 400
    pairing = bearer(edge, **NO_SUCH_CHARSET)
    status, text = await post(edge, "/marketplace/api/pairing-code", b'{"phone": "12"}', pairing)
    assert (status, json.loads(text)) == (400, {"error": "phone"})
    assert (await post(edge, "/marketplace/api/qr", b"{nope", pairing))[0] == 400
    assert (await post(edge, "/marketplace/api/qr", b'{"restart": true}', pairing))[0] == 200
    lifecycle = json.dumps(lifecycle_event(event="unknown_event")).encode()
    assert (await post(edge, "/webhook/yclients", lifecycle, NO_SUCH_CHARSET))[0] == 200
    body = json.dumps(waha_event()).encode()
    headers = {**waha_headers(body), **NO_SUCH_CHARSET}
    assert (await post(edge, "/webhook/whatsapp", body, headers))[0] == 200


@pytest.mark.parametrize(
    "salon_id",
    [2**64, 2**63, -(2**63) - 1, "18446744073709551616", "9" * 5000, 10**4000],
    ids=["2**64", "2**63", "below-min", "string-2**64", "5000-digit-string", "4001-digits"],
)
async def test_a_lifecycle_salon_id_beyond_64_bits_is_400(edge: Edge, salon_id: object) -> None:
    body = json.dumps(lifecycle_event(salon_id=salon_id)).encode()
    status, text = await post(edge, "/webhook/yclients", body, JSON)
    assert status == 400 and "salon_id" in text
    assert not await InboxEvent.exists()
    # Unauthenticated, the partner token is what is refused.
    body = json.dumps(lifecycle_event(salon_id=salon_id, partner_token="wrong")).encode()
    assert (await post(edge, "/webhook/yclients", body, JSON))[0] == 403


@pytest.mark.parametrize(
    "bad", ["salon-\u0000", "salon-\udc80", "\x00"], ids=["nul", "surrogate", "only-nul"]
)
@pytest.mark.parametrize("field", ["session", "id", "event"])
async def test_a_nul_or_a_lone_surrogate_in_wahas_names_is_400(
    edge: Edge, bad: str, field: str
) -> None:
    # json.dumps writes both as \\u escapes, as a sender would.
    body = json.dumps(waha_event(**{field: bad})).encode()
    status, text = await post(edge, "/webhook/whatsapp", body, waha_headers(body))
    assert status == 400 and field in text
    assert not await InboxEvent.exists()


@pytest.mark.parametrize("bad", ["wamid\u0000x", "wamid\udc80"], ids=["nul", "surrogate"])
async def test_a_message_id_no_database_keeps_falls_back_to_the_event_id(
    edge: Edge, bad: str
) -> None:
    event = waha_event(
        id="evt_message_1",
        event="message",
        payload={"id": bad, "from": "79995554433@c.us", "fromMe": False, "body": "hi"},
    )
    body = json.dumps(event).encode()
    status, _ = await post(edge, "/webhook/whatsapp", body, waha_headers(body))
    assert status == 200
    stored = await InboxEvent.get(source="whatsapp")
    assert stored.dedupe_key == "event:evt_message_1"
    repaired = bad.replace("\x00", "\ufffd").replace("\udc80", "\ufffd")
    assert stored.payload["payload"]["id"] == repaired


@pytest.mark.parametrize("stamp", ["9" * 5000, "1" * 17], ids=["5000-digits", "17-digits"])
async def test_a_timestamp_that_is_no_milliseconds_is_400(edge: Edge, stamp: str) -> None:
    body = json.dumps(waha_event()).encode()
    status, text = await post(
        edge, "/webhook/whatsapp", body, waha_headers(body, **{"X-Webhook-Timestamp": stamp})
    )
    assert status == 400 and "Timestamp" in text
    assert not await InboxEvent.exists()


async def test_the_partner_token_is_still_checked_first(edge: Edge) -> None:
    body = json.dumps(lifecycle_event(partner_token=PARTNER_TOKEN + "x", event="\u0000")).encode()
    assert (await post(edge, "/webhook/yclients", body, JSON))[0] == 403
