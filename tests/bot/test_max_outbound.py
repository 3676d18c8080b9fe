"""MaxChannel, the ClientChannel bot.outbound sends through, against the fake MAX Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.dialog import Reply
from bot.max.delivery import MaxChannel
from bot.outbound import Delivery, Outbound
from core.backoff import Clock
from core.clients import create_client
from core.max import MaxClient
from core.models import Client, Company
from tests.bot.conftest import make_salon
from tests.fakes.max import TOKEN, FakeMaxAPI


async def no_wait(delay: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as api:
        yield api


@pytest.fixture
async def outbound(fake: FakeMaxAPI) -> AsyncIterator[Outbound]:
    client = MaxClient(TOKEN, fake.url, clock=Clock(now=lambda: datetime.now(UTC), sleep=no_wait))
    yield Outbound({"max": MaxChannel(client)})
    await client.aclose()


async def max_client(company: Company, user_id: int | None) -> Client:
    client = (await create_client(company, phone="+79991234567", welcome=False)).client
    client.max_user_id = user_id
    client.last_channel = "max"
    await client.save()
    return client


def hello(locale: str) -> list[Reply]:
    return [Reply("Привет" if locale == "ru" else "Hello")]


async def test_sent_then_blocked_is_gone_and_remembered_then_skipped(
    orm: str, fake: FakeMaxAPI, outbound: Outbound
) -> None:
    company = await make_salon()
    client = await max_client(company, 5001)
    assert await outbound.to_client(client, hello) is Delivery.SENT
    assert [c.body["text"] for c in fake.sent_to(5001)] == ["Привет"]

    fake.blocked.add(5001)
    assert await outbound.to_client(client, hello) is Delivery.GONE
    client = await Client.get(id=client.id)
    assert "max" in client.unreachable
    calls = len(fake.calls)
    # Known to be gone: not tried again (no other channel knows her here).
    assert await outbound.to_client(client, hello) is Delivery.NO_CHAT
    assert len(fake.calls) == calls


async def test_a_lasting_429_is_retry_and_not_remembered(
    orm: str, fake: FakeMaxAPI, outbound: Outbound
) -> None:
    company = await make_salon()
    client = await max_client(company, 5002)
    fake.busy = 100
    assert await outbound.to_client(client, hello) is Delivery.RETRY
    assert len(fake.sent_to(5002)) == 4  # the first try and three waits out
    assert (await Client.get(id=client.id)).unreachable == {}


async def test_a_client_without_max_is_no_chat(orm: str, outbound: Outbound) -> None:
    company = await make_salon()
    client = await max_client(company, None)
    assert await outbound.to_client(client, hello) is Delivery.NO_CHAT
