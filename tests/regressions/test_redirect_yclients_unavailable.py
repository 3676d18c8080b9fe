"""Issue 10, low 3: a signed redirect for a salon YClients does not have answered 502, a slow
YClients kept the owner's browser for a minute (15 s a call, three retries), and YClients'
English reason appeared inside the Russian page. Now: 404 with a sentence, a short bound with
one retry at most, and the reason only in the log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from core.models import Company
from core.settings import Settings
from tests.web.onboarding_support import APP_ID, Bench, ClientFactory, open_bench
from web import marketplace

REASON = "Internal server error: upstream database timeout"


@pytest.fixture
async def bench(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Bench]:
    async with open_bench(aiohttp_client, settings) as bench:
        yield bench


async def test_a_failing_yclients_gets_a_short_russian_page_and_the_reason_is_logged(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    bench.connect(870)
    bench.yc.fail_next(10, 500, message=REASON)
    response = await bench.redirect(870)
    assert response.status == 503
    text = await response.text()
    assert "Не получилось связаться с YClients" in text
    assert REASON not in text and "Internal" not in text
    assert any(REASON in r.getMessage() for r in caplog.records)
    # One retry at most while a browser waits (the client's default is three).
    assert bench.yc.calls_to(f"/marketplace/salon/870/application/{APP_ID}") == 2
    assert await Company.filter(yclients_id=870).count() == 0


async def test_a_slow_yclients_is_bounded(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(marketplace, "REDIRECT_CALL_TIMEOUT", 0.2)
    bench.connect(871)
    bench.yc.slow(2.0)
    response = await bench.redirect(871)
    bench.yc.slow(0)
    assert response.status == 503
    assert "Попробуйте, пожалуйста, через минуту" in await response.text()
    assert bench.yc.calls_to(f"/marketplace/salon/871/application/{APP_ID}") <= 2
    assert await Company.filter(yclients_id=871).count() == 0
    assert (await bench.redirect(871)).status == 302
