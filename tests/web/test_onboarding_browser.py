"""The owner's onboarding in a real browser: Debian's headless Chromium driven by Playwright,
the app on loopback against the YClients and WAHA emulators.

Signed redirect → the page shows a QR → a newer QR replaces it → the emulator "scans" → the
page shows WhatsApp connected → Activate → YClients received the callback → the page shows the
client links and the poster. A screenshot of each step goes to test-artifacts/onboarding/.

Without /usr/bin/chromium (or the playwright package) the test is skipped with the reason;
under CI=true it fails instead. `playwright install` is never needed: the Debian binary is
the browser.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from core import companies
from core.models import Company, IntegrationStatus
from core.settings import Settings
from tests.web.onboarding_support import (
    APP_ID,
    BOT,
    ClientFactory,
    open_bench,
    redirect_query,
    until,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "onboarding"
IN_CI = os.environ.get("CI", "").lower() == "true"
SALON = 701


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


def _prepare() -> None:
    """Skip (or fail under CI) without a browser; an empty artifacts directory otherwise."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium (or `make system-deps`)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is missing: pip install -e '.[dev]'")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()


def _artifacts() -> dict[str, int]:
    return {path.stem: path.stat().st_size for path in ARTIFACTS.glob("*.png")}


def _qr_id(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


async def test_owner_links_whatsapp_and_activates_in_a_real_browser(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    _prepare()
    from playwright.async_api import async_playwright

    async with (
        open_bench(
            aiohttp_client, settings, poll_ms=300, first_qr_lifetime=2.0, qr_interval=2.0
        ) as bench,
        async_playwright() as playwright,
    ):
        bench.yc.add_company(SALON, title="Салон «Роза»")
        bench.connect(SALON)
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(
                viewport={"width": 390, "height": 844}, locale="ru-RU", device_scale_factor=2
            )
            page = await context.new_page()
            page.set_default_timeout(15_000)
            problems: list[str] = []
            outside: list[str] = []
            page.on(
                "console",
                lambda msg: problems.append(msg.text) if msg.type == "error" else None,
            )
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on(
                "request",
                lambda req: (
                    None
                    if req.url.startswith((bench.base_url, "data:"))
                    else outside.append(req.url)
                ),
            )

            async def shot(name: str) -> None:
                await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

            # 1. The owner arrives from the marketplace with signed, URL-safe user_data.
            query = redirect_query(SALON)
            await page.goto(bench.url(f"/auth/yclients/redirect?{query}"))
            assert page.url.startswith(bench.url("/marketplace/onboarding?token="))
            await page.wait_for_selector("#qr svg")
            first = await page.get_attribute("#qr", "data-qr-id")
            session = bench.waha.sessions[f"salon-{SALON}"]
            assert first in {_qr_id(v) for v in session.qr_values}
            assert "Салон «Роза»" in await page.inner_text("h1")
            # The stylesheets from web/static/ applied under the page's CSP (page.css: the
            # background, onboarding.css: the tabs); the script runs, or no QR would show.
            assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == (
                "rgb(246, 246, 247)"
            )
            assert (
                await page.evaluate("getComputedStyle(document.querySelector('.tabs')).display")
                == "flex"
            )
            await shot("01-qr")

            # 2. The gateway rotates the code; the page swaps in the new one by itself.
            await page.wait_for_function(
                "(first) => document.querySelector('#qr').dataset.qrId !== first", arg=first
            )
            second = await page.get_attribute("#qr", "data-qr-id")
            assert second != first and second in {_qr_id(v) for v in session.qr_values}
            await shot("02-new-qr")

            # 3. The salon's phone scans it: the page says WhatsApp is connected.
            await bench.waha.scan(f"salon-{SALON}", phone="79001234567")
            await page.wait_for_selector("#activate")
            assert "+79001234567" in await page.inner_text("#linked")
            await shot("03-connected")

            # 4. Activate: YClients gets the callback, the page shows the links and the poster.
            await page.click("#activate")
            await page.wait_for_selector("#links")

            async def active() -> bool:
                salon = await Company.get(yclients_id=SALON)
                return salon.integration_status is IntegrationStatus.ACTIVE

            await until(active)
            salon = await Company.get(yclients_id=SALON)
            [callback] = bench.yc.callbacks
            assert callback["salon_id"] == SALON and callback["application_id"] == APP_ID
            assert companies.hash_api_key(callback["api_key"]) == salon.api_key_hash
            assert callback["webhook_urls"] == [bench.url(f"/webhook/yclients/{salon.hook_token}")]
            telegram = await page.get_attribute("#telegram-link", "href")
            assert telegram == f"https://t.me/{BOT}?start=salon-{SALON}"
            assert await page.get_attribute("#whatsapp-link", "href") == "https://wa.me/79001234567"
            await page.wait_for_function(
                "() => { const img = document.querySelector('#poster');"
                " return img && img.complete && img.naturalWidth > 0; }"
            )
            size: Any = await page.evaluate(
                "() => [document.querySelector('#poster').naturalWidth,"
                " document.querySelector('#poster').naturalHeight]"
            )
            assert size == [1748, 2480]
            await shot("04-active")

            assert not problems, f"browser errors: {problems}"
            assert not outside, f"the page reached outside: {outside}"
        finally:
            await browser.close()
    shots = _artifacts()
    assert sorted(shots) == ["01-qr", "02-new-qr", "03-connected", "04-active"]
    assert all(size > 1000 for size in shots.values()), shots
