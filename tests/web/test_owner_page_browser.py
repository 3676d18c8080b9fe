"""Issue 14, the owner's page in a real browser (Debian's headless Chromium through
Playwright, as tests/web/test_onboarding_browser.py): the owner opens the link from chat,
changes a setting, sees a wrong value refused by its field, creates their own invite and sees
the poster. Screenshots go to test-artifacts/owner-page/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import staff as staff_service
from core.models import SettingChange, StaffRole
from core.settings import Settings
from tests.web.onboarding_support import BOT, ClientFactory, open_bench
from tests.web.test_onboarding_browser import CHROMIUM, CHROMIUM_ARGS, _unavailable
from tests.web.test_owner_page import NO_WHATSAPP, SALON, active_salon
from web.marketplace import owner_link

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "owner-page"


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


async def test_the_owner_changes_a_setting_and_invites_themselves_in_a_real_browser(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    _prepare()
    from playwright.async_api import async_playwright

    async with (
        open_bench(aiohttp_client, settings, settings_update=NO_WHATSAPP) as bench,
        async_playwright() as playwright,
    ):
        salon = await active_salon()
        link = owner_link(bench.settings, salon)
        assert link is not None
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

            # 1. The link from chat opens the owner's page: state, links, poster, settings.
            await page.goto(link)
            assert "Салон «Роза»" in await page.inner_text("h1")
            assert "Salonbot" in await page.inner_text("#product")
            assert "WhatsApp подключён" in await page.inner_text("#state")
            assert await page.get_attribute("#telegram-link", "href") == (
                f"https://t.me/{BOT}?start=salon-{SALON}"
            )
            await page.wait_for_function(
                "() => { const img = document.querySelector('#poster');"
                " return img && img.complete && img.naturalWidth > 0; }"
            )
            size: Any = await page.evaluate(
                "() => [document.querySelector('#poster').naturalWidth,"
                " document.querySelector('#poster').naturalHeight]"
            )
            assert size == [1748, 2480]
            assert await page.input_value("#setting-accrual_percent") == "5"
            await shot("01-owner-page")

            # 2. A wrong value: refused by its field, nothing stored.
            await page.fill("#setting-accrual_percent", "сто")
            await page.fill("#setting-welcome_bonus", "300")
            await page.click("#settings-save")
            error = await page.wait_for_selector("#accrual_percent-error")
            assert error is not None
            assert "«сто» здесь не подходит" in await error.inner_text()
            await salon.refresh_from_db()
            assert (salon.accrual_percent, salon.welcome_bonus) == (5, 0)
            assert not await SettingChange.exists()
            # The refused form is answered 400, which Chromium reports for the document.
            assert problems == [
                "Failed to load resource: the server responded with a status of 400 (Bad Request)"
            ]
            problems.clear()
            await shot("02-refused")

            # 3. Corrected and saved: stored, audited, shown.
            await page.fill("#setting-accrual_percent", "8")
            await page.click("#settings-save")
            await page.wait_for_selector("#settings-notice")
            assert "Сохранено" in await page.inner_text("#settings-notice")
            assert await page.input_value("#setting-accrual_percent") == "8"
            await salon.refresh_from_db()
            assert (salon.accrual_percent, salon.welcome_bonus) == (8, 300)
            changed = await SettingChange.filter(company_id=salon.id).values_list(
                "actor", "key", "new_value"
            )
            assert sorted(changed) == [
                ("owner-page", "accrual_percent", "8"),
                ("owner-page", "welcome_bonus", "300"),
            ]
            await shot("03-saved")

            # 4. The owner's own invite: a link and a QR code; the first to open it is admin.
            await page.click("#invite-admin")
            await page.wait_for_selector("#invite-qr svg")
            invite = await page.get_attribute("#invite-link", "href")
            assert invite is not None
            assert invite.startswith(f"https://t.me/{BOT}?start=staff-")
            await shot("04-invite")
            token = invite.split("start=staff-", 1)[1]
            joined = await staff_service.accept_invite(token, telegram_user_id=9001, name="Ира")
            assert joined is not None and joined.staff.role is StaffRole.ADMIN
            assert await staff_service.accept_invite(token, telegram_user_id=9002) is None

            assert [s.role for s in await staff_service.team(salon.id)] == [StaffRole.ADMIN]
            assert not problems, f"browser errors: {problems}"
            assert not outside, f"the page reached outside: {outside}"
        finally:
            await browser.close()
    assert sorted(p.stem for p in ARTIFACTS.glob("*.png")) == [
        "01-owner-page",
        "02-refused",
        "03-saved",
        "04-invite",
    ]
