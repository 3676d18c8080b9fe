"""Issue 14, the owner's page: the onboarding page of an active salon, opened by the signed
link an admin gets in chat (or the marketplace redirect's token). Its settings form, its staff
invites and its posters, through the real app on loopback."""

from __future__ import annotations

import io
import logging
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from PIL import Image

from core import staff as staff_service
from core.logging import Redactor
from core.marketplace import (
    OWNER_AUDIENCE,
    OWNER_PURPOSE,
    issue_owner_token,
    issue_token,
    read_token,
)
from core.marketplace.tokens import TokenInvalid
from core.models import Company, IntegrationStatus, SettingChange, Staff, StaffRole
from core.settings import Settings
from tests.bot.test_end_to_end import zbarimg
from tests.core.marketplace.test_poster import decode_all, longest_white_band
from tests.web.onboarding_support import BOT, Bench, ClientFactory, open_bench
from web.marketplace import owner_link

RU = {"Accept-Language": "ru"}
EN = {"Accept-Language": "en"}
SALON = 7401
NO_WHATSAPP = {
    "whatsapp_gateway_url": None,
    "whatsapp_gateway_api_key": None,
    "whatsapp_webhook_hmac_key": None,
}


@pytest.fixture
async def bench(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Bench]:
    # No WhatsApp gateway: the page shows the stored state without asking one.
    update = {**NO_WHATSAPP, "support_contact": "help@salonbot.example"}
    async with open_bench(aiohttp_client, settings, settings_update=update) as bench:
        yield bench


async def active_salon(yclients_id: int = SALON, **fields: Any) -> Company:
    values: dict[str, Any] = {
        "title": "Салон «Роза»",
        "integration_status": IntegrationStatus.ACTIVE,
        "hook_token": secrets.token_hex(16),
        "whatsapp_session": f"salon-{yclients_id}",
        "whatsapp_connected": True,
        "whatsapp_phone": "+79001234567",
    }
    return await Company.create(yclients_id=yclients_id, **{**values, **fields})


def secret(bench: Bench) -> str:
    assert bench.settings.secret_key is not None
    return bench.settings.secret_key.get_secret_value()


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def token_in(link: str) -> str:
    found = re.search(r"token=([^&]+)", link)
    assert found is not None, link
    return found.group(1)


async def form(bench: Bench, path: str, token: str, **fields: str) -> tuple[int, str]:
    response = await bench.client.post(path, data={"token": token, **fields}, headers=RU)
    return response.status, await response.text()


def field_value(page: str, key: str) -> str:
    found = re.search(rf'<input id="setting-{key}" name="{key}" [^>]*?value="([^"]*)"', page)
    assert found is not None, key
    return unescape(found.group(1))


def all_settings(page: str) -> dict[str, str]:
    keys = re.findall(r'<input id="setting-(\w+)"', page)
    return {key: field_value(page, key) for key in keys}


# --- the signed link ---------------------------------------------------------------------------


async def test_the_owner_link_opens_the_owners_page_of_an_active_salon(bench: Bench) -> None:
    salon = await active_salon()
    await Staff.create(company=salon, telegram_user_id=11, name="Ольга", role=StaffRole.ADMIN)
    link = owner_link(bench.settings, salon)
    assert link is not None and link.startswith(bench.base_url + "/marketplace/onboarding?token=")
    claims = read_token(secret(bench), token_in(link))
    assert claims.purpose == OWNER_PURPOSE and claims.yclients_id == SALON
    assert timedelta(hours=23) < claims.expires_at - datetime.now(UTC) <= timedelta(hours=24)

    response = await bench.client.get(path_of(link), headers=RU)
    assert response.status == 200
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    page = await response.text()
    # The product and what clients get; the state above the poster; the support contact.
    assert "Salonbot: ваши клиенты получают бонусы за каждый визит" in page
    assert page.index('id="state"') < page.index('id="poster"')
    assert "WhatsApp подключён: +79001234567" in page
    assert "help@salonbot.example" in page
    # The client links, every poster download, the staff, every setting with its value.
    assert f'id="telegram-link" href="https://t.me/{BOT}?start=salon-{SALON}"' in page
    assert 'id="whatsapp-link" href="https://wa.me/79001234567"' in page
    for paper in ("a5", "a4"):
        for fmt in ("png", "pdf"):
            assert f'id="poster-{paper}-{fmt}"' in page
    assert "Ольга" in page and 'data-role="admin"' in page
    assert all_settings(page) == {
        "accrual_percent": "5",
        "welcome_bonus": "0",
        "max_redeem_percent": "30",
        "reminder_day_before_at": "18:00",
        "reminder_hours_before": "2",
        "quiet_hours": "21:00-09:00",
        "silent_alert_hours_before": "3",
        "review_delay_hours": "2",
        "review_url": "off",
        "digest_at": "mon 10:00",
        # A secret: the page never carries the token, only its fingerprint as a placeholder.
        "telegram_bot_token": "",
    }
    assert 'type="password" autocomplete="off" value="" placeholder="off"' in page
    # Nothing the page loads carries the token in a path.
    assert not re.search(r'(src|href|action)="/[^"?]*ey[A-Za-z0-9_-]{20,}', page)


async def test_the_marketplace_token_opens_the_same_owners_page(bench: Bench) -> None:
    await active_salon()
    token = issue_token(secret(bench), SALON)
    page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
    assert 'id="settings-form"' in page and 'id="staff"' in page


def refused_tokens(key: str) -> dict[str, str]:
    now = datetime.now(UTC)
    good = jwt.decode(
        issue_owner_token(key, SALON), key, algorithms=["HS256"], audience=OWNER_AUDIENCE
    )
    return {
        "expired": issue_owner_token(key, SALON, now=now - timedelta(hours=25)),
        "wrong audience": jwt.encode({**good, "aud": "salonbot:elsewhere"}, key, "HS256"),
        "wrong purpose": jwt.encode({**good, "purpose": "staff-invite"}, key, "HS256"),
        # The onboarding purpose under the owner's audience: the pair must match.
        "crossed purpose": issue_token(key, SALON, audience=OWNER_AUDIENCE),
        "no purpose": jwt.encode({k: v for k, v in good.items() if k != "purpose"}, key, "HS256"),
        "another key": issue_owner_token("k" * 48, SALON),
        "alg none": jwt.encode(good, None, algorithm="none"),
        "list audience": jwt.encode(
            {**good, "aud": [OWNER_AUDIENCE, "salonbot:elsewhere"]}, key, "HS256"
        ),
    }


async def test_expired_or_foreign_owner_links_are_refused_with_a_page(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    salon = await active_salon()
    for name, token in refused_tokens(secret(bench)).items():
        with pytest.raises(TokenInvalid):
            read_token(secret(bench), token)
        response = await bench.client.get(f"/marketplace/onboarding?token={token}", headers=EN)
        text = await response.text()
        assert response.status == 403, name
        assert response.content_type == "text/html", name
        expected = "This link has expired" if name == "expired" else "This link is not valid"
        assert expected in text, name
        assert "Traceback" not in text and 'id="settings-form"' not in text, name
        status, text = await form(bench, "/marketplace/owner/settings", token, accrual_percent="50")
        assert status == 403 and "Traceback" not in text, name
        status, _text = await form(bench, "/marketplace/owner/invite", token, role="admin")
        assert status == 403, name
    assert "Traceback" not in caplog.text
    await salon.refresh_from_db()
    assert salon.accrual_percent == 5
    assert not await SettingChange.exists() and not await staff_service.open_invites(salon.id)


async def test_forms_without_a_token_or_with_a_broken_body_are_4xx(bench: Bench) -> None:
    salon = await active_salon()
    good = issue_owner_token(secret(bench), SALON)
    # No token (a cookie is no credential here).
    response = await bench.client.post(
        "/marketplace/owner/settings",
        data={"accrual_percent": "50"},
        headers={**RU, "Cookie": f"token={good}"},
    )
    assert response.status == 400
    # Not UTF-8, too big, an unknown role, an invite id that is no number.
    response = await bench.client.post(
        "/marketplace/owner/settings",
        data=b"token=" + good.encode() + b"&accrual_percent=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    response = await bench.client.post(
        "/marketplace/owner/settings", data={"token": good, "review_url": "x" * 20_000}
    )
    assert response.status == 413
    status, _ = await form(bench, "/marketplace/owner/invite", good, role="owner")
    assert status == 400
    status, _ = await form(bench, "/marketplace/owner/invite/revoke", good, invite="one")
    assert status == 400
    # The Bearer header works as well as the body.
    response = await bench.client.post(
        "/marketplace/owner/settings",
        data={"accrual_percent": "6"},
        headers={"Authorization": f"Bearer {good}"},
    )
    assert response.status == 200
    await salon.refresh_from_db()
    assert salon.accrual_percent == 6


async def test_a_salon_not_yet_active_has_no_owner_controls(bench: Bench) -> None:
    salon = await active_salon(integration_status=IntegrationStatus.PENDING_WHATSAPP)
    token = issue_owner_token(secret(bench), SALON)
    page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
    assert 'id="settings-form"' not in page and 'id="auto-answers"' in page
    status, _ = await form(bench, "/marketplace/owner/settings", token, accrual_percent="9")
    assert status == 409
    await salon.refresh_from_db()
    assert salon.accrual_percent == 5


# --- the settings form -------------------------------------------------------------------------


async def test_the_settings_form_changes_a_value_and_writes_the_audit_row(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    salon = await active_salon()
    token = issue_owner_token(secret(bench), SALON)
    page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
    values = all_settings(page)
    values.update(accrual_percent="7", quiet_hours="22:00-08:30")
    status, page = await form(bench, "/marketplace/owner/settings", token, **values)
    assert status == 200
    assert 'id="settings-notice"' in page and "Сохранено." in page
    assert field_value(page, "accrual_percent") == "7"
    await salon.refresh_from_db()
    assert (salon.accrual_percent, salon.quiet_hours) == (7, "22:00-08:30")
    rows = await SettingChange.filter(company_id=salon.id).order_by("key")
    assert [(r.actor, r.key, r.old_value, r.new_value) for r in rows] == [
        ("owner-page", "accrual_percent", "5", "7"),
        ("owner-page", "quiet_hours", "21:00-09:00", "22:00-08:30"),
    ]
    # The same form again changes nothing and writes nothing.
    status, page = await form(bench, "/marketplace/owner/settings", token, **values)
    assert status == 200 and "Ничего не изменилось." in page
    assert await SettingChange.filter(company_id=salon.id).count() == 2
    # What our code logged names the salon and the keys, never the token; a line a library
    # may write with the URL (an access log) is masked by the log's formatter.
    ours = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("web", "core", "bot"))
    )
    assert "changed ['accrual_percent', 'quiet_hours']" in ours and token not in ours
    assert token not in Redactor()(caplog.text)


async def test_a_bad_value_shows_its_message_by_the_field_and_stores_nothing(
    bench: Bench,
) -> None:
    salon = await active_salon()
    token = issue_owner_token(secret(bench), SALON)
    status, page = await form(
        bench,
        "/marketplace/owner/settings",
        token,
        accrual_percent="150",
        welcome_bonus="200",
        quiet_hours="поздно",
    )
    assert status == 400
    assert "Ничего не сохранено: исправьте отмеченные ниже значения." in page
    bad = re.search(r'<p class="error" id="accrual_percent-error" role="alert">([^<]*)</p>', page)
    assert bad is not None
    assert unescape(bad.group(1)) == "«150» здесь не подходит: укажите целое число от 0 до 100."
    assert 'id="quiet_hours-error"' in page and 'id="welcome_bonus-error"' not in page
    # The owner's typing stays in the fields to be corrected.
    assert field_value(page, "accrual_percent") == "150"
    assert field_value(page, "welcome_bonus") == "200"
    # The error sits right under its own field.
    field = page.index('id="setting-accrual_percent"')
    assert field < page.index('id="accrual_percent-error"') < page.index("setting-welcome_bonus")
    await salon.refresh_from_db()
    assert (salon.accrual_percent, salon.welcome_bonus, salon.quiet_hours) == (
        5,
        0,
        "21:00-09:00",
    )
    assert not await SettingChange.exists()

    status, page = await form(
        bench, "/marketplace/owner/settings", token, review_url="ftp://x", digest_at="fri 25:00"
    )
    assert status == 400
    response = await bench.client.post(
        "/marketplace/owner/settings", data={"token": token, "review_url": "ftp://x"}, headers=EN
    )
    text = unescape(await response.text())
    assert "“ftp://x” does not fit here: enter a link starting with https://" in text


# --- staff invites -----------------------------------------------------------------------------


def invite_token(page: str) -> str:
    found = re.search(r'id="invite-link" href="https://t\.me/([^"?]+)\?start=staff-([^"]+)"', page)
    assert found is not None, "no invite link on the page"
    assert found.group(1) == BOT
    return found.group(2)


async def test_the_owners_invite_makes_the_first_to_open_it_the_admin_once(
    bench: Bench,
) -> None:
    salon = await active_salon()
    token = issue_owner_token(secret(bench), SALON)
    status, page = await form(bench, "/marketplace/owner/invite", token, role="admin")
    assert status == 200
    assert '<div class="qr" id="invite-qr"><svg' in page
    assert "Ваше приглашение: откройте его на своём телефоне" in page
    secret_token = invite_token(page)
    [open_invite] = await staff_service.open_invites(salon.id)
    assert open_invite.role is StaffRole.ADMIN

    first = await staff_service.accept_invite(secret_token, telegram_user_id=501, name="Ирина")
    assert first is not None and first.staff.role is StaffRole.ADMIN
    assert first.company.id == salon.id
    assert await staff_service.accept_invite(secret_token, telegram_user_id=502) is None
    assert await Staff.filter(company_id=salon.id).count() == 1

    page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
    assert "Ирина" in page and 'data-role="admin"' in page and 'id="invites"' not in page


async def test_a_staff_invite_can_be_revoked_before_it_is_used(bench: Bench) -> None:
    salon = await active_salon()
    token = issue_owner_token(secret(bench), SALON)
    status, page = await form(bench, "/marketplace/owner/invite", token, role="staff")
    assert status == 200
    secret_token = invite_token(page)
    [invite] = await staff_service.open_invites(salon.id)
    assert invite.role is StaffRole.STAFF
    assert f'name="invite" value="{invite.id}"' in page
    status, page = await form(
        bench, "/marketplace/owner/invite/revoke", token, invite=str(invite.id)
    )
    assert status == 200 and "Приглашение отозвано" in page
    assert await staff_service.accept_invite(secret_token, telegram_user_id=601) is None
    assert not await Staff.exists()
    status, page = await form(
        bench, "/marketplace/owner/invite/revoke", token, invite=str(invite.id)
    )
    assert "уже использовано или истекло" in page
    # Another salon's invite cannot be revoked through this salon's page.
    other = await active_salon(7402)
    _secret, foreign = await staff_service.create_invite(other)
    await form(bench, "/marketplace/owner/invite/revoke", token, invite=str(foreign.id))
    assert [i.id for i in await staff_service.open_invites(other.id)] == [foreign.id]


async def test_without_a_telegram_bot_the_page_says_how_staff_cannot_join(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    update = {**NO_WHATSAPP, "telegram_bot_username": None}
    async with open_bench(aiohttp_client, settings, settings_update=update) as bench:
        await active_salon()
        token = issue_owner_token(secret(bench), SALON)
        page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
        assert 'id="invite-admin"' not in page
        assert "Telegram на этом сервисе пока не настроен" in page
        status, _ = await form(bench, "/marketplace/owner/invite", token, role="admin")
        assert status == 409
        assert not await staff_service.open_invites((await Company.get(yclients_id=SALON)).id)


# --- the posters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paper", "size"), [("a5", (1748, 2480)), ("a4", (2480, 3508))], ids=["A5", "A4"]
)
async def test_the_poster_downloads_are_print_ready(
    bench: Bench, paper: str, size: tuple[int, int], tmp_path: Path
) -> None:
    zbarimg()
    await active_salon(welcome_bonus=300)
    token = issue_owner_token(secret(bench), SALON)
    response = await bench.client.get(f"/marketplace/poster.png?token={token}&size={paper}")
    assert response.status == 200 and response.content_type == "image/png"
    png = await response.read()
    image = Image.open(io.BytesIO(png))
    assert image.size == size
    assert tuple(round(v) for v in image.info["dpi"]) == (300, 300)
    assert longest_white_band(image) < 0.08 * size[1]
    assert decode_all(png, tmp_path) == {
        f"https://t.me/{BOT}?start=salon-{SALON}",
        "https://wa.me/79001234567",
    }
    download = await bench.client.get(
        f"/marketplace/poster.pdf?token={token}&size={paper}&download=1"
    )
    assert download.status == 200 and download.content_type == "application/pdf"
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="poster-{SALON}-{paper}.pdf"'
    )
    pdf = await download.read()
    assert pdf.startswith(b"%PDF-")
    box = re.search(rb"/MediaBox \[ ?0 0 ([\d.]+) ([\d.]+) ?\]", pdf)
    assert box is not None
    # Points at 72 per inch: the sheet's size in millimetres within half a millimetre.
    millimetres = [float(v) / 72 * 25.4 for v in box.groups()]
    expected = {"a5": (148, 210), "a4": (210, 297)}[paper]
    assert all(abs(m - e) < 0.5 for m, e in zip(millimetres, expected, strict=True))


async def test_a_poster_of_an_unknown_size_is_a_400(bench: Bench) -> None:
    await active_salon()
    token = issue_owner_token(secret(bench), SALON)
    response = await bench.client.get(f"/marketplace/poster.png?token={token}&size=a3")
    assert response.status == 400
