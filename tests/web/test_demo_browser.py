"""The demo page in a real browser, as a newcomer meets it: Debian's headless Chromium driven by
Playwright against `salonbot demo`'s app on loopback (tests/web/test_onboarding_browser.py has
the harness's reasons).

Open the page → press “▶️ Начать” in the client's chat → press “🔑 Мой код” on the menu and see
the code and its QR → press “✅ Визит состоялся” in the YClients panel → the bonus notice
appears in the client's chat. Screenshots go to test-artifacts/demo/.
"""

from __future__ import annotations

from pathlib import Path

from core import codes
from core.models import Client
from core.settings import Settings
from tests.web.demo_support import open_demo
from tests.web.onboarding_support import ClientFactory
from tests.web.test_onboarding_browser import CHROMIUM, CHROMIUM_ARGS, _unavailable
from web.demo import catalogue

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "demo"


def _prepare() -> None:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium (or `make system-deps`)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is missing: pip install -e '.[dev]'")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()


async def test_a_visitor_joins_sees_the_code_and_earns_a_bonus_in_a_real_browser(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    _prepare()
    from playwright.async_api import async_playwright

    async with open_demo(aiohttp_client, settings) as demo, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="ru-RU"
            )
            page = await context.new_page()
            page.set_default_timeout(20_000)
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
                    if req.url.startswith((demo.base_url, "data:"))
                    else outside.append(req.url)
                ),
            )

            async def shot(name: str) -> None:
                await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

            await page.goto(demo.base_url + "/")
            # The way in is said on the page and is the first button of the client's chat.
            hint = await page.inner_text("#hint")
            assert "«▶️ Начать»" in hint and "«✅ Визит состоялся»" in hint
            start = page.locator("#client .keys button.start")
            await start.wait_for()
            assert await start.inner_text() == "▶️ Начать"
            await page.wait_for_function(
                "() => document.querySelector('#visit').textContent.includes('Женская стрижка')"
            )
            await shot("01-open")

            await start.click()
            await page.locator("#client .keys button", has_text="🔑 Мой код").wait_for()
            welcome = await page.locator("#client .msg.bot").first.inner_text()
            assert catalogue.TITLE in welcome and "250 бонусов" in welcome

            await page.locator("#client .keys button", has_text="🔑 Мой код").click()
            qr = page.locator("#client .msg.bot img")
            await qr.wait_for()
            client = await Client.get(phone=catalogue.CLIENT_PHONE)
            assert (
                codes.display(client.code)
                in await page.locator("#client .msg.bot").last.inner_text()
            )
            await page.wait_for_function(
                "() => { const img = document.querySelector('#client .msg.bot img');"
                " return img && img.complete && img.naturalWidth > 0; }"
            )
            await shot("02-code")

            await page.click("#yclients [data-action=complete]")
            notice = page.locator("#client .msg.notice")
            await notice.wait_for()
            text = await notice.inner_text()
            assert "Начислено бонусов: 125" in text and "Ваш баланс: 375 бонусов" in text
            assert "Маникюр" in await page.inner_text("#visit")
            assert "Готово" in await page.inner_text("#acted")
            await shot("03-bonus")

            # The staff side: the code typed in the administrator's chat finds the client.
            await page.locator("#staff .keys button.start").click()
            await page.locator("#staff .keys button", has_text="🔎 Найти клиента").click()
            await page.fill("#staff input[name=text]", codes.display(client.code))
            await page.press("#staff input[name=text]", "Enter")
            await page.wait_for_function(
                "() => [...document.querySelectorAll('#staff .msg.bot')]"
                ".some((m) => m.textContent.includes('375'))"
            )
            await shot("04-staff")

            assert not problems, f"browser errors: {problems}"
            assert not outside, f"the page reached outside: {outside}"
        finally:
            await browser.close()
    shots = sorted(path.stem for path in ARTIFACTS.glob("*.png"))
    assert shots == ["01-open", "02-code", "03-bonus", "04-staff"]
