"""Issue 10, medium 4: when YClients installed the app but the callback's answer was lost, the
retry stored a new key, "already installed" counted as success, and the salon ended active with
a key YClients never got. Every key sent stays valid until one is proven by a request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core import companies
from core.models import Company, IntegrationStatus, MarketplaceEvent, PendingApiKey
from core.settings import Settings
from tests.web.onboarding_support import APP_ID, Bench, ClientFactory, open_bench, until

SYNC = "/api/v1/yclients/sync-bookings"


@pytest.fixture
async def bench(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Bench]:
    async with open_bench(aiohttp_client, settings) as bench:
        yield bench


async def test_the_key_yclients_kept_after_a_lost_answer_works_and_the_others_stop(
    bench: Bench,
) -> None:
    token = await bench.register(850)
    await bench.link_whatsapp(850, token)
    bench.yc.lose_callback_answers(1)
    status, body = await bench.activate(token)
    assert (status, body["outcome"]) == (502, "callback_failed")
    assert bench.yc.applications[(850, APP_ID)]["status"] == "active"  # YClients did install

    status, body = await bench.activate(token)  # the owner retries
    assert (status, body["outcome"]) == (200, "activated"), body
    salon = await Company.get(yclients_id=850)
    assert salon.integration_status is IntegrationStatus.ACTIVE
    event = await MarketplaceEvent.get(company_id=salon.id, kind="activated")
    assert event.details["via"] == "already_installed"
    kept, retried = (c["api_key"] for c in bench.yc.callbacks)
    assert bench.yc.applications[(850, APP_ID)]["api_key"] == kept

    # YClients uses the key it holds: it is accepted, and that proves it.
    response = await bench.client.post(SYNC, headers=bench.bearer(kept))
    assert response.status != 401
    salon = await Company.get(yclients_id=850)
    assert salon.api_key_hash == companies.hash_api_key(kept)
    assert not await PendingApiKey.filter(company_id=salon.id).exists()
    # The key of the retry, which YClients never got, no longer opens anything.
    response = await bench.client.post(SYNC, headers=bench.bearer(retried))
    assert response.status == 401
    assert await companies.company_by_api_key(kept) is not None


async def test_a_confirmed_callback_makes_its_key_the_salons_at_once(bench: Bench) -> None:
    token = await bench.register(851)
    await bench.link_whatsapp(851, token)
    bench.yc.fail_callback(422, "Неверные данные")
    assert (await bench.activate(token))[0] == 502
    bench.yc.fail_callback(None)
    assert (await bench.activate(token))[0] == 200
    refused, accepted = (c["api_key"] for c in bench.yc.callbacks)
    salon = await Company.get(yclients_id=851)
    assert salon.api_key_hash == companies.hash_api_key(accepted)
    assert not await PendingApiKey.filter(company_id=salon.id).exists()
    assert await companies.company_by_api_key(refused) is None


async def test_uninstall_drops_unconfirmed_keys_too(bench: Bench) -> None:
    token = await bench.register(852)
    await bench.link_whatsapp(852, token)
    bench.yc.lose_callback_answers(1)
    await bench.activate(token)
    await bench.activate(token)
    assert await PendingApiKey.all().count() == 2
    assert await bench.lifecycle(852, "uninstall") == 200

    async def dropped() -> bool:
        return not await PendingApiKey.all().exists()

    await until(dropped)
    for callback in bench.yc.callbacks:
        assert await companies.company_by_api_key(callback["api_key"]) is None
