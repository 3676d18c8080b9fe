"""Issue 10, medium 1: a signed redirect URL could be replayed forever, each time for a fresh
one-hour onboarding token. It now opens its salons again only within REDIRECT_GRACE (a refresh,
a second tab), later only while YClients reports the salon freshly `pending`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.marketplace import REDIRECT_GRACE
from core.models import Company, MarketplaceEvent, RedirectUse
from core.settings import Settings
from tests.web.onboarding_support import (
    APP_ID,
    Bench,
    ClientFactory,
    open_bench,
    redirect_query,
    token_of,
)


@pytest.fixture
async def bench(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Bench]:
    async with open_bench(aiohttp_client, settings) as bench:
        yield bench


async def open_url(bench: Bench, query: str, **headers: str) -> tuple[int, str]:
    response = await bench.client.get(
        f"/auth/yclients/redirect?{query}", allow_redirects=False, headers=headers
    )
    return response.status, response.headers.get("Location") or await response.text()


async def age_uses(by: object = REDIRECT_GRACE) -> None:
    for use in await RedirectUse.all():
        await RedirectUse.filter(id=use.id).update(first_used_at=use.first_used_at - by)  # type: ignore[operator]


async def started() -> int:
    return await MarketplaceEvent.filter(kind="registration_started").count()


async def test_a_replayed_url_is_refused_once_the_window_has_passed(bench: Bench) -> None:
    bench.connect(860)
    query = redirect_query(860)
    status, location = await open_url(bench, query)
    assert status == 302
    # A refresh within the window still works.
    status, location = await open_url(bench, query)
    assert status == 302 and token_of(location)
    token = token_of(location)
    await bench.link_whatsapp(860, token)
    assert (await bench.activate(token))[0] == 200  # YClients now reports the app active

    await age_uses()
    before = await started()
    status, text = await open_url(bench, query)
    assert status == 403
    assert "Эта ссылка уже использована" in text and "Маркетплейса YClients" in text
    assert await started() == before
    status, text = await open_url(bench, query, **{"Accept-Language": "en"})
    assert status == 403 and "Open the app again from the YClients Marketplace" in text
    # A newly signed URL of the same owner is a new first use.
    assert (await bench.redirect(860)).status == 302


async def test_a_replay_works_again_while_yclients_reports_the_salon_pending(
    bench: Bench,
) -> None:
    bench.connect(861)
    query = redirect_query(861)
    assert (await open_url(bench, query))[0] == 302
    await age_uses()
    # The owner came back to an unfinished set-up: YClients still reports `pending`.
    assert bench.yc.applications[(861, APP_ID)]["status"] == "pending"
    assert (await open_url(bench, query))[0] == 302
    use = await RedirectUse.get(yclients_id=861)
    salon = await Company.get(yclients_id=861)
    assert use.first_used_at > salon.created_at  # the window started again
