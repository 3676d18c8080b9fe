"""Issue 10, critical: a signed `user_data` names a YClients user, not a salon, so reusing one's
own valid signature with another `salon_id` took over that salon. A redirect now opens only
salons bound to its signed user, binds a salon only when YClients reports the app `pending`
there, never overwrites a stored owner, and names at most MAX_BRANCHES branches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core import marketplace
from core.models import Company, IntegrationStatus, MarketplaceEvent
from core.settings import Settings
from tests.web.onboarding_support import (
    APP_ID,
    OWNER,
    Bench,
    ClientFactory,
    open_bench,
    redirect_query,
    settled,
    token_of,
)
from web.keys import WHATSAPP as WHATSAPP_KEY

ATTACKER = {
    "id": 777001,
    "name": "Someone Else",
    "email": "attacker@example.org",
    "phone": "79990000001",
    "is_approved": True,
    "salon_name": "Другой салон",
}
NOT_OWNER = "Этот салон уже подключил к приложению другой пользователь YClients"


@pytest.fixture
async def bench(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Bench]:
    async with open_bench(aiohttp_client, settings) as bench:
        yield bench


async def activated(bench: Bench, salon_id: int) -> str:
    token = await bench.register(salon_id)
    await bench.link_whatsapp(salon_id, token)
    status, body = await bench.activate(token)
    assert (status, body["outcome"]) == (200, "activated"), body
    return token


async def owner_of(salon_id: int) -> tuple[Any, ...]:
    salon = await Company.get(yclients_id=salon_id)
    return (
        salon.marketplace_user_id,
        salon.marketplace_user_name,
        salon.marketplace_user_email,
        salon.marketplace_user_phone,
        salon.marketplace_owner_bound_at,
    )


async def refused(bench: Bench, salon_ids: list[int] | int, status: int = 403) -> str:
    response = await bench.redirect(salon_ids, user=ATTACKER)
    text = await response.text()
    assert response.status == status, text
    assert "Location" not in response.headers
    return text


async def registrations_by(user_id: object) -> int:
    events = await MarketplaceEvent.filter(kind="registration_started")
    return sum(1 for e in events if e.details.get("user_id") == user_id)


async def test_a_pending_salon_of_another_owner_is_refused(bench: Bench) -> None:
    await bench.register(801)
    before = await owner_of(801)
    # YClients still reports the app `pending` there: only the binding protects it.
    assert NOT_OWNER in await refused(bench, 801)
    assert await owner_of(801) == before and before[0] == OWNER["id"]
    assert await registrations_by(ATTACKER["id"]) == 0
    assert not bench.waha.sessions
    # The owner still gets through.
    token_of((await bench.redirect(801)).headers["Location"])


async def test_an_active_salon_with_unlinked_whatsapp_is_refused(bench: Bench) -> None:
    await activated(bench, 802)
    await bench.client.app[WHATSAPP_KEY].logout("salon-802")
    await bench.waha.drain()
    await settled()
    before = await owner_of(802)
    session_calls = len(bench.waha.calls)
    await refused(bench, 802)
    assert await owner_of(802) == before
    assert len(bench.waha.calls) == session_calls
    assert (await Company.get(yclients_id=802)).integration_status is IntegrationStatus.ACTIVE
    response = await bench.redirect(802)
    assert response.status == 302


async def test_a_healthy_active_salon_is_refused_and_its_owner_kept(bench: Bench) -> None:
    await activated(bench, 803)
    before = await owner_of(803)
    text = await refused(bench, 803)
    assert "поддержку" in text
    english = await bench.client.get(
        "/auth/yclients/redirect?" + redirect_query(803, user=ATTACKER),
        headers={"Accept-Language": "en"},
        allow_redirects=False,
    )
    assert english.status == 403
    assert "Ask the salon owner who connected it" in await english.text()
    assert await owner_of(803) == before


async def test_fifty_branches_in_one_request_are_refused_and_nothing_is_registered(
    bench: Bench,
) -> None:
    for salon_id in range(900, 950):
        bench.yc.add_company(salon_id)
        bench.yc.install(salon_id, APP_ID, status="active")
    text = await refused(bench, list(range(900, 950)), status=400)
    assert str(marketplace.MAX_BRANCHES) in text
    assert await Company.all().count() == 0
    assert not bench.yc.requests
    # Within the cap, salons that belong to others (active in YClients, bound to nobody here)
    # are refused as a whole.
    await refused(bench, list(range(900, 900 + marketplace.MAX_BRANCHES)))
    assert await Company.all().count() == 0


async def test_salons_not_connected_in_yclients_are_never_registered(bench: Bench) -> None:
    bench.yc.add_company(804)
    await refused(bench, 804, status=404)  # not installed at all
    bench.yc.install(804, APP_ID, status="uninstalled")
    await refused(bench, 804)
    bench.yc.install(804, APP_ID, status="active")  # someone else's, never seen here
    assert NOT_OWNER in await refused(bench, 804)
    assert await Company.filter(yclients_id=804).count() == 0


async def test_the_first_confirmed_user_is_bound_and_nobody_overwrites_them(
    bench: Bench,
) -> None:
    """The remaining trust assumption: of the signed users who come for a salon YClients
    reports `pending`, the first is taken as its owner; the next one is refused."""
    bench.connect(805)
    response = await bench.redirect(805)
    assert response.status == 302
    assert NOT_OWNER in await refused(bench, 805)
    assert (await owner_of(805))[0] == OWNER["id"]


async def test_a_salon_registered_before_binding_is_bound_only_by_its_stored_user(
    bench: Bench,
) -> None:
    bench.yc.add_company(806)
    bench.yc.install(806, APP_ID, status="active")
    await Company.create(
        yclients_id=806,
        hook_token="hook-806",
        integration_status=IntegrationStatus.ACTIVE,
        marketplace_user_id=OWNER["id"],
        marketplace_user_name="Ирина",
    )
    await refused(bench, 806)
    assert (await owner_of(806))[:2] == (OWNER["id"], "Ирина")
    assert (await bench.redirect(806)).status == 302
    owner = await owner_of(806)
    assert owner[0] == OWNER["id"] and owner[4] is not None
    await refused(bench, 806)


async def test_signed_user_data_without_a_user_id_binds_nothing(bench: Bench) -> None:
    bench.connect(807)
    anonymous = {k: v for k, v in OWNER.items() if k != "id"}
    response = await bench.redirect(807, user=anonymous)
    assert response.status == 403
    assert "кто вы" in await response.text()
    assert await Company.filter(yclients_id=807).count() == 0


async def test_an_uninstalled_salon_is_rebound_only_after_yclients_reports_it_pending(
    bench: Bench,
) -> None:
    await activated(bench, 808)
    assert await bench.lifecycle(808, "uninstall") == 200
    await settled()
    bench.yc.uninstall(808, APP_ID)
    await refused(bench, 808, status=404)
    assert (await owner_of(808))[0] == OWNER["id"]
    # A new installation (the salon changed hands): its owner pressed Connect.
    bench.yc.press_connect(808, APP_ID)
    response = await bench.redirect(808, user=ATTACKER)
    assert response.status == 302
    salon = await Company.get(yclients_id=808)
    assert salon.marketplace_user_id == ATTACKER["id"]
    assert salon.integration_status is IntegrationStatus.PENDING_WHATSAPP
    assert salon.api_key_hash is None and not salon.whatsapp_connected


async def test_unsigned_mode_never_binds_nor_opens_a_bound_salon(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    allowed = settings.model_copy(update={"marketplace_allow_unsigned": True})
    async with open_bench(aiohttp_client, allowed) as bench:
        await bench.register(809)
        before = await owner_of(809)
        response = await bench.redirect(809, signed=False)
        assert response.status == 403
        response = await bench.redirect(809, sign="f" * 64)
        assert response.status == 403
        assert await owner_of(809) == before
        # An uninstalled salon keeps its owner too: only a signed, confirmed user rebinds it.
        assert await bench.lifecycle(809, "uninstall") == 200
        await settled()
        assert (await bench.redirect(809, signed=False)).status == 403
        assert await owner_of(809) == before
        bench.yc.add_company(810)
        response = await bench.redirect(810, signed=False)
        assert response.status == 302
        assert (await owner_of(810))[0] is None
