"""Issue 12, onboarding pages: a permanent problem says what to do and whom to write to (the
operator's SUPPORT_CONTACT), never "try later"; a link without its token is "incomplete", not
"expired"; the note meant for the app's developer is logged instead of shown to the owner.
Plus the small page at `GET /`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.marketplace import issue_token
from core.settings import Settings, SettingsError, load_settings
from tests.web.onboarding_support import Bench, ClientFactory, open_bench

RU = {"Accept-Language": "ru"}
EN = {"Accept-Language": "en"}
CONTACT = "support@example.com"
SUPPORT_RU = (
    'Поддержка сервиса: <a href="mailto:support@example.com" rel="noreferrer noopener" '
    'target="_blank">support@example.com</a>'
)
SUPPORT_EN = (
    "The service&#x27;s support: "
    '<a href="mailto:support@example.com" rel="noreferrer noopener" '
    'target="_blank">support@example.com</a>'
)


@pytest.fixture
async def bench(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Bench]:
    update = {"support_contact": CONTACT, "whatsapp_gateway_url": None}
    async with open_bench(aiohttp_client, settings, settings_update=update) as bench:
        yield bench


async def page(bench: Bench, path: str, headers: dict[str, str]) -> tuple[int, str]:
    response = await bench.client.get(path, headers=headers, allow_redirects=False)
    return response.status, await response.text()


def secret(bench: Bench) -> str:
    assert bench.settings.secret_key is not None
    return bench.settings.secret_key.get_secret_value()


async def test_a_link_without_its_token_is_incomplete_not_expired(bench: Bench) -> None:
    for path in (
        "/marketplace/onboarding",
        "/marketplace/onboarding?token=",
        "/marketplace/poster.png",
    ):
        status, ru = await page(bench, path, RU)
        assert status == 400, path
        assert "<h1>Ссылка неполная</h1>" in ru
        assert (
            "В ссылке не хватает ключа доступа — возможно, она обрезалась при копировании. "
            "Откройте приложение заново из Маркетплейса YClients: оно приведёт сюда с полной "
            "ссылкой."
        ) in ru
        assert "истёк" not in ru and SUPPORT_RU in ru
    status, en = await page(bench, "/marketplace/onboarding", EN)
    assert status == 400 and "<h1>This link is incomplete</h1>" in en
    assert (
        "The link has lost its access key, perhaps when it was copied. Open the app again from "
        "the YClients Marketplace: it brings you here with a whole link."
    ) in en
    assert "expired" not in en and SUPPORT_EN in en


async def test_expired_damaged_and_unknown_salon_links_each_say_what_they_are(
    bench: Bench,
) -> None:
    key = secret(bench)
    expired = issue_token(key, 505, now=datetime.now(UTC) - timedelta(hours=2))
    status, ru = await page(bench, f"/marketplace/onboarding?token={expired}", RU)
    assert status == 403
    assert "Срок действия ссылки истёк — откройте приложение ещё раз из YClients." in ru

    status, ru = await page(bench, "/marketplace/onboarding?token=not-a-jwt", RU)
    assert status == 403 and "<h1>Ссылка недействительна</h1>" in ru
    assert (
        "Ключ доступа в ссылке повреждён или выдан не этим сервисом. Откройте приложение "
        "заново из Маркетплейса YClients: оно приведёт сюда с новой ссылкой."
    ) in ru

    unknown = issue_token(key, 987654)
    status, ru = await page(bench, f"/marketplace/onboarding?token={unknown}", RU)
    assert status == 404 and "<h1>Салон здесь не подключён</h1>" in ru
    assert (
        "Сервис больше не знает салон из этой ссылки. Чтобы подключить его снова, откройте "
        "приложение из Маркетплейса YClients."
    ) in ru
    status, en = await page(bench, f"/marketplace/poster.png?token={unknown}", EN)
    assert status == 404 and "<h1>The salon is not connected here</h1>" in en
    assert (
        "This service no longer knows the salon from the link. To connect it again, open the "
        "app from the YClients Marketplace."
    ) in en


async def test_no_whatsapp_gateway_is_a_permanent_problem_with_whom_to_write_to(
    bench: Bench,
) -> None:
    token = await bench.register(520)
    status, ru = await page(bench, f"/marketplace/onboarding?token={token}", RU)
    assert status == 200
    assert (
        "WhatsApp на этом сервисе не настроен, поэтому номер салона здесь подключить нельзя. "
        "С вашей стороны ничего менять не нужно: напишите, пожалуйста, в поддержку сервиса."
    ) in ru
    assert "Попробуйте позже" not in ru and "недоступен" not in ru
    assert SUPPORT_RU in ru
    status, en = await page(bench, f"/marketplace/onboarding?token={token}", EN)
    assert (
        "WhatsApp is not set up on this service, so the salon&#x27;s number cannot be linked "
        "here. There is nothing to change on your side: please write to the service&#x27;s "
        "support."
    ) in en
    assert "Try again later" not in en and SUPPORT_EN in en


async def test_an_unsigned_redirect_shows_the_owner_no_developer_note_and_logs_it(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bench.yc.add_company(530)
    status, ru = await page(bench, "/auth/yclients/redirect?salon_id=530", RU)
    assert status == 403
    assert (
        "Запрос пришёл без подписи YClients, поэтому подключить салон нельзя. Откройте "
        "приложение заново из Маркетплейса YClients. Если эта страница появится снова, "
        "значит, приложение ещё не настроено для этого: напишите, пожалуйста, в поддержку "
        "сервиса — с вашей стороны ничего менять не нужно."
    ) in ru
    assert SUPPORT_RU in ru
    status, en = await page(bench, "/auth/yclients/redirect?salon_id=530", EN)
    assert status == 403
    assert (
        "The request did not come signed by YClients, so the salon cannot be connected. Open "
        "the app again from the YClients Marketplace. If this page comes back, the app is not "
        "set up for it yet: please write to the service&#x27;s support, there is nothing to "
        "change on your side."
    ) in en
    for text in (ru, en):
        assert "developer" not in text and "transmit user data" not in text
        assert "разработчик" not in text and "передавать данные" not in text
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("enable 'transmit user data'" in line for line in logged), logged


async def test_connecting_salons_not_configured_is_permanent_not_try_later(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    update: dict[str, Any] = {"yclients_partner_token": None, "support_contact": None}
    async with open_bench(aiohttp_client, settings, settings_update=update) as bench:
        status, ru = await page(bench, "/auth/yclients/redirect?salon_id=540", RU)
        assert status == 503 and "<h1>Не получается подключить салон</h1>" in ru
        assert (
            "Подключение салонов на этом сервисе пока не настроено, поэтому сейчас подключиться "
            "нельзя. С вашей стороны ничего менять не нужно: напишите, пожалуйста, в поддержку "
            "сервиса."
        ) in ru
        # Without SUPPORT_CONTACT the owner is sent to the app's page in the Marketplace.
        assert (
            "Поддержка сервиса: напишите разработчику приложения, его контакты есть на странице "
            "приложения в Маркетплейсе YClients."
        ) in ru
        assert "Попробуйте позже" not in ru
        status, en = await page(bench, "/auth/yclients/redirect?salon_id=540", EN)
        assert status == 503 and "<h1>The salon cannot be connected</h1>" in en
        assert (
            "Connecting salons is not set up on this service, so it cannot be done now. There "
            "is nothing to change on your side: please write to the service&#x27;s support."
        ) in en


@pytest.mark.parametrize(
    ("value", "href"),
    [
        ("support@example.com", "mailto:support@example.com"),
        ("+7 (900) 000-00-00", "tel:+79000000000"),
        ("https://example.com/help", "https://example.com/help"),
    ],
)
def test_support_contact_is_an_email_phone_or_url(
    settings: Settings, value: str, href: str
) -> None:
    from web.onboarding_page import support_line

    loaded = load_settings(_env_file=None, support_contact=f" {value} ")
    assert loaded.support_contact == value
    assert f'href="{href}"' in support_line(lambda m: m, loaded.support_contact)
    assert load_settings(_env_file=None, support_contact="").support_contact is None


@pytest.mark.parametrize("value", ["call us", "example.com", "javascript:alert(1)", "@salonbot"])
def test_a_support_contact_of_another_shape_is_refused_with_the_fix(
    settings: Settings, value: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, support_contact=value)
    assert str(refused.value) == (
        "SUPPORT_CONTACT: must be an e-mail (support@example.com), a phone number "
        "(+7 900 000-00-00) or an http(s) URL (https://example.com/support)"
    )


# --- GET / ------------------------------------------------------------------------------------


async def test_the_root_names_the_service_and_links_health(bench: Bench) -> None:
    response = await bench.client.get("/", headers=RU)
    assert response.status == 200 and response.content_type == "text/html"
    ru = await response.text()
    assert "<title>Salonbot</title>" in ru and '<html lang="ru">' in ru
    assert (
        "Помощник салонов красоты на YClients для записи и бонусов: клиенты записываются, "
        "смотрят бонусы и показывают свой код в Telegram и WhatsApp."
    ) in ru
    assert '<a id="health" href="/health">Состояние сервиса</a>' in ru
    # Nothing loaded from elsewhere.
    assert "src=" not in ru and "http://" not in ru and "https://" not in ru
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    en = await (await bench.client.get("/", headers=EN)).text()
    assert '<html lang="en">' in en and '<a id="health" href="/health">Service status</a>' in en
    assert "A loyalty and booking assistant for beauty salons on YClients" in en
    assert (await bench.client.get("/health")).status in (200, 503)
