"""Marketplace onboarding through the real app, against the YClients and WAHA emulators:
registration, the page and its API, activation, lifecycle webhooks and WhatsApp status."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from PIL import Image
from pydantic import SecretStr

from core import companies, db
from core.bookings.sync import sync_all
from core.checks import check_whatsapp, run_checks
from core.marketplace import TOKEN_AUDIENCE, TOKEN_PURPOSE, issue_token
from core.models import (
    Booking,
    Company,
    InboxEvent,
    InboxStatus,
    IntegrationStatus,
    LedgerEntry,
    LedgerKind,
    MarketplaceEvent,
)
from core.settings import Settings
from core.whatsapp import sign_webhook
from core.yclients import YClientsClient
from tests.fakes.waha import WahaEmulator
from tests.fakes.yclients import PARTNER_TOKEN, USER_TOKEN
from tests.web.onboarding_support import (
    APP_ID,
    BOT,
    HMAC_KEY,
    OWNER,
    WAHA_KEY,
    Bench,
    ClientFactory,
    open_bench,
    redirect_query,
    settled,
    signed_user_data,
    token_of,
    until,
)
from tests.web.test_sync_api_and_cli import run_cli
from web.app import create_app
from web.keys import WHATSAPP as WHATSAPP_KEY

EXPIRED = "This link has expired — open the app again from YClients."
INVALID = (  # as the page escapes it
    "The link&#x27;s access key is damaged or was not issued by this service. Open the app again "
    "from the YClients Marketplace: it brings you here with a fresh link."
)
INCOMPLETE = (
    "The link has lost its access key, perhaps when it was copied. Open the app again from "
    "the YClients Marketplace: it brings you here with a whole link."
)
EN = {"Accept-Language": "en"}


@pytest.fixture
async def bench(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Bench]:
    async with open_bench(aiohttp_client, settings) as bench:
        yield bench


def secret(bench: Bench) -> str:
    assert bench.settings.secret_key is not None
    return bench.settings.secret_key.get_secret_value()


async def company(salon_id: int) -> Company:
    return await Company.get(yclients_id=salon_id)


async def kinds(salon_id: int) -> list[str]:
    found = await company(salon_id)
    return list(
        await MarketplaceEvent.filter(company_id=found.id)
        .order_by("id")
        .values_list("kind", flat=True)
    )


async def activated_salon(bench: Bench, salon_id: int) -> str:
    token = await bench.register(salon_id)
    await bench.link_whatsapp(salon_id, token)
    status, body = await bench.activate(token)
    assert (status, body["outcome"]) == (200, "activated"), body
    return token


# --- registration -------------------------------------------------------------------------------


async def test_signed_redirect_registers_the_salon_and_issues_an_onboarding_token(
    bench: Bench,
) -> None:
    bench.yc.add_company(501, title="Салон «Роза»")
    bench.connect(501)
    response = await bench.redirect(501)
    assert response.status == 302
    token = token_of(response.headers["Location"])
    salon = await company(501)
    assert salon.integration_status is IntegrationStatus.PENDING_WHATSAPP
    assert salon.title == "Салон «Роза»"
    assert salon.marketplace_user_id == OWNER["id"]
    assert salon.marketplace_user_email == OWNER["email"]
    event = await MarketplaceEvent.get(company_id=salon.id, kind="registration_started")
    assert event.details["signed"] is True and event.details["created"] is True
    assert event.details["bound"] is True and event.details["app_status"] == "pending"
    assert salon.marketplace_owner_bound_at is not None

    claims = jwt.decode(token, secret(bench), algorithms=["HS256"], audience=TOKEN_AUDIENCE)
    assert claims["sub"] == "501" and claims["purpose"] == TOKEN_PURPOSE
    assert claims["exp"] - claims["iat"] == 3600 and claims["jti"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


async def test_the_page_speaks_the_browsers_language_and_loads_nothing_from_outside(
    bench: Bench,
) -> None:
    token = await bench.register(502)
    ru = await bench.client.get(f"/marketplace/onboarding?token={token}")
    assert ru.status == 200
    html = await ru.text()
    assert '<html lang="ru">' in html and "Подключите WhatsApp салона" in html
    assert "Салон 502" in html
    en = await bench.client.get(
        f"/marketplace/onboarding?token={token}", headers={"Accept-Language": "en-US,en;q=0.9"}
    )
    assert "Link the salon&#x27;s WhatsApp" in await en.text()
    # The stylesheets and the script come from /static/ on this origin, nothing from elsewhere.
    refs = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]*)"', html)
    assert sorted(ref.split("?v=")[0] for ref in refs) == [
        "/static/onboarding.css",
        "/static/onboarding.js",
        "/static/page.css",
        "data:,",
    ]
    for ref in refs[1:]:
        assert (await bench.client.get(ref)).status == 200, ref
    assert "@import" not in html and "@font-face" not in html and "url(" not in html
    assert "https://" not in html.split('<script id="cfg"')[0].replace("https://t.me", "")
    # Nothing inline for the CSP to let through: the one script without src is JSON data.
    assert "<style" not in html and " style=" not in html
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [
        '<script id="cfg" type="application/json">'
    ]
    csp = ru.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "nonce" not in csp and "unsafe" not in csp
    assert ru.headers["Referrer-Policy"] == "no-referrer"
    assert ru.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "case",
    ["bad signature", "missing signature", "no user data", "signed by another partner"],
)
async def test_unsigned_or_badly_signed_redirects_are_refused_and_change_nothing(
    bench: Bench, case: str
) -> None:
    bench.yc.add_company(503)
    if case == "bad signature":
        response = await bench.redirect(503, sign="0" * 64)
    elif case == "missing signature":
        query = "salon_id=503&user_data=eyJpZCI6IDF9"
        response = await bench.client.get(f"/auth/yclients/redirect?{query}", allow_redirects=False)
    elif case == "no user data":
        response = await bench.redirect(503, signed=False)
    else:
        user_data, sign = signed_user_data(partner_token="someone-else")
        response = await bench.client.get(
            f"/auth/yclients/redirect?salon_id=503&user_data={user_data}&user_data_sign={sign}",
            allow_redirects=False,
        )
    assert response.status == 403
    text = await response.text()
    assert "Запрос пришёл без подписи YClients" in text and "Traceback" not in text
    # What the app's developer has to do is logged, not shown to the owner.
    assert "передавать данные пользователя" not in text and "developer" not in text
    assert await Company.filter(yclients_id=503).count() == 0
    assert await MarketplaceEvent.all().count() == 0
    assert bench.yc.calls_to("/api/v1/company/503") == 0


async def test_unsigned_redirects_pass_only_when_allowed_and_store_no_user(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    allowed = settings.model_copy(update={"marketplace_allow_unsigned": True})
    async with open_bench(aiohttp_client, allowed) as bench:
        bench.yc.add_company(504)
        response = await bench.redirect(504, sign="f" * 64)
        assert response.status == 302
        salon = await company(504)
        assert salon.marketplace_user_id is None
        event = await MarketplaceEvent.get(company_id=salon.id, kind="registration_started")
        assert event.details["signed"] is False


async def test_a_salon_unknown_to_yclients_gets_a_404_page_not_a_trace(bench: Bench) -> None:
    response = await bench.redirect(99999)
    assert response.status == 404
    text = await response.text()
    assert "YClients" in text and "Traceback" not in text
    assert await Company.filter(yclients_id=99999).count() == 0
    # Installed, yet YClients has no such salon (its data is gone): 404 too, with a sentence.
    bench.yc.install(99998, APP_ID, status="pending")
    response = await bench.client.get(
        "/auth/yclients/redirect?" + redirect_query(99998), allow_redirects=False
    )
    assert response.status == 404
    assert "YClients не знает салона с таким номером" in await response.text()


async def test_branches_become_companies_and_link_to_each_other(bench: Bench) -> None:
    bench.yc.add_company(601, title="Роза на Тверской")
    bench.yc.add_company(602, title="Роза на Арбате")
    bench.connect(601)
    bench.connect(602)
    response = await bench.redirect([601, 602])
    assert response.status == 302
    token = token_of(response.headers["Location"])
    assert {c.yclients_id for c in await Company.all()} == {601, 602}
    page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
    assert "Роза на Тверской" in page and "Роза на Арбате" in page
    branch_url = page.split('<li><a href="')[1].split('"')[0].replace("&amp;", "&")
    branch_page = await (await bench.client.get(branch_url)).text()
    assert "<h1>Роза на Арбате</h1>" in branch_page


# --- tokens -------------------------------------------------------------------------------------


def forged_tokens(bench: Bench) -> dict[str, str]:
    key = secret(bench)
    good = issue_token(key, 505)
    head, payload, signature = good.split(".")
    flipped = ("A" if signature[5] != "A" else "B").join((signature[:5], signature[6:]))
    claims = jwt.decode(good, key, algorithms=["HS256"], audience=TOKEN_AUDIENCE)
    return {
        "expired": issue_token(key, 505, now=datetime.now(UTC) - timedelta(hours=2)),
        "tampered signature": f"{head}.{payload}.{flipped}",
        "tampered payload": jwt.encode({**claims, "sub": "506"}, "x" * 40, algorithm="HS256"),
        "another purpose": issue_token(key, 505, purpose="staff-invite"),
        "another audience": jwt.encode({**claims, "aud": "elsewhere"}, key, algorithm="HS256"),
        "alg none": jwt.encode({**claims}, None, algorithm="none"),
        "garbage": "not-a-jwt",
    }


async def test_expired_tampered_or_foreign_tokens_are_refused_everywhere(bench: Bench) -> None:
    await bench.register(505)
    await bench.register(506)
    before = await Company.all().values_list("id", "integration_status", "whatsapp_session")
    for name, token in forged_tokens(bench).items():
        page = await bench.client.get(f"/marketplace/onboarding?token={token}", headers=EN)
        assert page.status == 403, name
        assert (EXPIRED if name == "expired" else INVALID) in await page.text(), name
        poster = await bench.client.get(f"/marketplace/poster.png?token={token}")
        assert poster.status == 403, name
        for method, path in (
            ("POST", "/marketplace/api/qr"),
            ("GET", "/marketplace/api/status"),
            ("POST", "/marketplace/activate"),
            ("POST", "/marketplace/api/pairing-code"),
        ):
            status, body = await bench.api(method, path, token)
            assert status == 401, (name, path)
            assert body["error"] == "token"
    assert await Company.all().values_list("id", "integration_status", "whatsapp_session") == before
    assert not bench.waha.sessions and not bench.yc.callbacks
    missing = await bench.client.post("/marketplace/api/qr")
    assert missing.status == 401 and "Bearer" in missing.headers["WWW-Authenticate"]
    none_page = await bench.client.get("/marketplace/onboarding", headers=EN)
    assert none_page.status == 400 and INCOMPLETE in await none_page.text()


# --- WhatsApp -----------------------------------------------------------------------------------


async def test_qr_status_new_code_and_pairing_code(bench: Bench) -> None:
    token = await bench.register(510)
    status, body = await bench.api("POST", "/marketplace/api/qr", token, json={})
    assert status == 200 and body["integration_status"] == "pending_whatsapp"
    name = "salon-510"
    assert (await company(510)).whatsapp_session == name
    session = bench.waha.sessions[name]
    assert session.config["webhooks"][0]["url"] == bench.url("/webhook/whatsapp")
    assert session.config["webhooks"][0]["hmac"] == {"key": HMAC_KEY}
    assert session.config["metadata"]["salonbot.yclients_id"] == "510"
    await until(lambda: session.status == "SCAN_QR_CODE")
    status, body = await bench.api("GET", "/marketplace/api/status", token)
    assert body["status"] == "SCAN_QR_CODE" and body["qr_svg"].startswith("<svg")
    assert body["connected"] is False and len(body["qr_id"]) == 16

    await bench.waha.fail_session(name)
    status, body = await bench.api("GET", "/marketplace/api/status", token)
    assert body["status"] == "FAILED" and body["qr_svg"] is None
    first_series = list(session.qr_values)
    status, body = await bench.api("POST", "/marketplace/api/qr", token, json={"restart": True})
    await until(lambda: session.status == "SCAN_QR_CODE")
    status, body = await bench.api("GET", "/marketplace/api/status", token)
    assert body["status"] == "SCAN_QR_CODE" and session.qr not in first_series

    status, body = await bench.api(
        "POST", "/marketplace/api/pairing-code", token, json={"phone": "+7 900 123-45-67"}
    )
    assert status == 200 and len(body["code"]) == 9
    assert session.pairing_codes == [("79001234567", body["code"])]
    status, body = await bench.api(
        "POST", "/marketplace/api/pairing-code", token, json={"phone": "12"}
    )
    assert (status, body) == (400, {"error": "phone"})


async def test_session_status_webhooks_keep_the_link_current_without_the_device_suffix(
    bench: Bench,
) -> None:
    token = await bench.register(511)
    await bench.link_whatsapp(511, token, phone="79001234567")
    await settled()
    salon = await company(511)
    assert salon.whatsapp_connected and salon.whatsapp_phone == "+79001234567"
    assert "whatsapp_connected" in await kinds(511)
    stored = await InboxEvent.filter(source="whatsapp").count()
    assert stored >= 3  # STARTING, SCAN_QR_CODE, WORKING

    await bench.client.app[WHATSAPP_KEY].logout("salon-511")  # the phone is unlinked
    await bench.waha.drain()
    await settled()

    async def unlinked() -> bool:
        return not (await company(511)).whatsapp_connected

    await until(unlinked)
    assert (await kinds(511))[-1] == "whatsapp_disconnected"


async def test_wrong_hmac_and_replays_are_refused_and_change_nothing(bench: Bench) -> None:
    token = await bench.register(512)
    await bench.link_whatsapp(512, token)
    await settled()
    working = next(
        d
        for d in bench.waha.deliveries
        if d.event["event"] == "session.status" and d.event["payload"]["status"] == "WORKING"
    )
    # The phone is unlinked afterwards: replaying the old WORKING event must not relink it.
    await bench.client.app[WHATSAPP_KEY].logout("salon-512")
    await bench.waha.drain()
    await settled()
    assert not (await company(512)).whatsapp_connected
    # The logout's own later status events may still arrive; none of ours may be stored.
    last_event = await InboxEvent.all().order_by("-id").first()
    events_before = last_event.id if last_event else 0
    # Nor may any be audited as "connected".
    last_audit = await MarketplaceEvent.all().order_by("-id").first()
    audit_before = last_audit.id if last_audit else 0

    now_ms = str(time.time_ns() // 1_000_000)
    fresh = {**working.headers, "X-Webhook-Timestamp": now_ms}
    forged = {**fresh, "X-Webhook-Hmac": sign_webhook(working.body, "wrong-key")}
    response = await bench.client.post("/webhook/whatsapp", data=working.body, headers=forged)
    assert response.status == 401
    unsigned = {k: v for k, v in fresh.items() if k != "X-Webhook-Hmac"}
    response = await bench.client.post("/webhook/whatsapp", data=working.body, headers=unsigned)
    assert response.status == 401
    tampered = working.body.replace(b'"WORKING"', b'"FAILED"')
    response = await bench.client.post("/webhook/whatsapp", data=tampered, headers=fresh)
    assert response.status == 401
    stale = {**working.headers, "X-Webhook-Timestamp": str(int(now_ms) - 3_600_000)}
    response = await bench.client.post("/webhook/whatsapp", data=working.body, headers=stale)
    assert response.status == 400
    # A replay with a fresh timestamp (the header is not under the HMAC) is a duplicate.
    response = await bench.client.post("/webhook/whatsapp", data=working.body, headers=fresh)
    assert response.status == 200 and (await response.json())["duplicate"] is True
    await settled()
    stored = await InboxEvent.filter(id__gt=events_before).values_list("payload", flat=True)
    assert all(payload.get("id") != working.event["id"] for payload in stored)
    assert not await MarketplaceEvent.filter(
        id__gt=audit_before, kind="whatsapp_connected"
    ).exists()
    assert not (await company(512)).whatsapp_connected


async def test_message_events_are_stored_not_yet_acted_on(bench: Bench) -> None:
    token = await bench.register(513)
    await bench.link_whatsapp(513, token)
    await bench.waha.incoming_message("salon-513", "79995554433@c.us", "Привет")
    await settled()
    stored = await InboxEvent.filter(source="whatsapp").order_by("-id").first()
    assert stored is not None and stored.payload["event"] == "message"
    assert stored.status is InboxStatus.DONE
    assert stored.company_id == (await company(513)).id


# --- activation ---------------------------------------------------------------------------------


async def test_activation_sends_the_callback_and_a_record_webhook_reaches_the_bookings(
    bench: Bench,
) -> None:
    token = await bench.register(520)
    status, body = await bench.activate(token)
    assert (status, body["outcome"]) == (409, "not_ready")  # WhatsApp first
    assert bench.yc.callbacks == []
    await bench.link_whatsapp(520, token)
    status, body = await bench.activate(token)
    assert status == 200 and body == {
        "ok": True,
        "outcome": "activated",
        "integration_status": "active",
        "message": None,
    }
    salon = await company(520)
    assert salon.integration_status is IntegrationStatus.ACTIVE
    [callback] = bench.yc.callbacks
    assert set(callback) == {"salon_id", "application_id", "api_key", "webhook_urls"}
    assert callback["salon_id"] == 520 and callback["application_id"] == APP_ID
    assert companies.hash_api_key(callback["api_key"]) == salon.api_key_hash
    hook = bench.url(f"/webhook/yclients/{salon.hook_token}")
    assert callback["webhook_urls"] == [hook]
    # The emulator answered 301 with an HTML page, exactly as YClients does: that is success.
    activated = await MarketplaceEvent.get(company_id=salon.id, kind="activated")
    assert activated.details["http_status"] == 301 and activated.details["via"] == "callback"
    assert await companies.company_by_api_key(callback["api_key"]) is not None

    record = bench.yc.add_record(520, attendance=1)
    status, _text = await bench.yc.post_record_webhook(callback["webhook_urls"][0], record)
    assert status == 200
    await settled()
    booking = await Booking.get(company_id=salon.id, yclients_record_id=record["id"])
    assert booking.status.value == "completed"
    assert await LedgerEntry.filter(company_id=salon.id, kind=LedgerKind.ACCRUAL).count() == 1

    # A second activation changes nothing.
    status, body = await bench.activate(token)
    assert (status, body["outcome"]) == (200, "already_active")
    assert len(bench.yc.callbacks) == 1
    assert (await company(520)).api_key_hash == salon.api_key_hash


async def test_a_failed_callback_keeps_the_salon_pending_and_a_retry_works(bench: Bench) -> None:
    token = await bench.register(521)
    await bench.link_whatsapp(521, token)
    bench.yc.fail_callback(422, "Неверный api_key")
    status, body = await bench.activate(token)
    assert status == 502 and body["outcome"] == "callback_failed"
    assert body["message"] == "Неверный api_key"
    salon = await company(521)
    assert salon.integration_status is IntegrationStatus.PENDING_WHATSAPP
    assert (await kinds(521))[-1] == "callback_failed"
    page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
    assert "Неверный api_key" in page and "Попробовать снова" in page

    bench.yc.fail_callback(None)
    status, body = await bench.activate(token)
    assert (status, body["outcome"]) == (200, "activated")
    assert len(bench.yc.callbacks) == 2
    assert bench.yc.callbacks[0]["api_key"] != bench.yc.callbacks[1]["api_key"]
    salon = await company(521)
    assert companies.hash_api_key(bench.yc.callbacks[1]["api_key"]) == salon.api_key_hash


async def test_already_installed_is_resolved_by_reading_the_application_status(
    bench: Bench,
) -> None:
    token = await bench.register(522)
    await bench.link_whatsapp(522, token)
    bench.yc.install(522, APP_ID, status="active")
    reads = bench.yc.calls_to(f"/marketplace/salon/522/application/{APP_ID}")
    status, body = await bench.activate(token)
    assert (status, body["outcome"]) == (200, "activated")
    assert bench.yc.calls_to(f"/marketplace/salon/522/application/{APP_ID}") == reads + 1
    salon = await company(522)
    event = await MarketplaceEvent.get(company_id=salon.id, kind="activated")
    assert event.details["via"] == "already_installed"

    token = await bench.register(523)
    await bench.link_whatsapp(523, token)
    bench.yc.install(523, APP_ID, status="frozen")
    status, body = await bench.activate(token)
    assert status == 502 and "already installed" in body["message"]
    assert (await company(523)).integration_status is IntegrationStatus.PENDING_WHATSAPP


async def test_activation_without_app_id_is_refused_clearly(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with open_bench(
        aiohttp_client, settings, settings_update={"yclients_app_id": None}
    ) as bench:
        # Without the app id nothing can confirm who owns a salon: not even registered.
        bench.connect(524)
        response = await bench.redirect(524)
        assert response.status == 503
        assert await Company.filter(yclients_id=524).count() == 0
        token = issue_token(secret(bench), 524)
        await Company.create(yclients_id=524, hook_token="hook-524")
        status, body = await bench.activate(token)
        assert (status, body["outcome"]) == (503, "not_configured")
        assert bench.yc.callbacks == []


# --- after activation ---------------------------------------------------------------------------


async def test_an_active_salon_sees_its_links_and_poster_and_a_new_redirect_keeps_it_active(
    bench: Bench,
) -> None:
    await activated_salon(bench, 530)
    token = await bench.register(530)  # the owner opens the app again from YClients
    salon = await company(530)
    assert salon.integration_status is IntegrationStatus.ACTIVE
    page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
    assert f"https://t.me/{BOT}?start=salon-530" in page
    assert "https://wa.me/79001234567" in page
    assert 'id="poster"' in page and 'id="activate"' not in page and 'id="qr"' not in page
    poster = await bench.client.get(f"/marketplace/poster.png?token={token}")
    assert poster.status == 200 and poster.content_type == "image/png"
    image = Image.open(io.BytesIO(await poster.read()))
    assert image.size == (1748, 2480)


async def test_an_active_salon_whose_whatsapp_dropped_gets_a_qr_again(bench: Bench) -> None:
    token = await activated_salon(bench, 531)
    await bench.client.app[WHATSAPP_KEY].logout("salon-531")
    await bench.waha.drain()
    await settled()
    page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
    assert 'id="qr"' in page and 'id="links"' in page
    assert (await company(531)).integration_status is IntegrationStatus.ACTIVE


# --- lifecycle ----------------------------------------------------------------------------------


async def test_wrong_partner_token_is_refused_and_changes_nothing(bench: Bench) -> None:
    await activated_salon(bench, 540)
    events = await InboxEvent.all().count()
    for token in ("wrong", "", None, PARTNER_TOKEN + " ", 12345):
        body: dict[str, Any] = {"salon_id": 540, "application_id": APP_ID, "event": "uninstall"}
        if token is not None:
            body["partner_token"] = token
        response = await bench.client.post("/webhook/yclients", json=body)
        assert response.status == 403, token
    response = await bench.client.post("/webhook/yclients", data=b"{not json")
    assert response.status == 400
    await settled()
    assert (await company(540)).integration_status is IntegrationStatus.ACTIVE
    assert await InboxEvent.all().count() == events


async def test_uninstall_reinstall_uninstall_and_the_lifecycle_is_audited(bench: Bench) -> None:
    await activated_salon(bench, 541)
    old = await company(541)
    assert await bench.lifecycle(541, "uninstall") == 200
    await settled()
    salon = await company(541)
    assert salon.integration_status is IntegrationStatus.UNINSTALLED
    assert salon.api_key_hash is None and not salon.whatsapp_connected
    assert bench.waha.calls_to("POST", "/api/sessions/salon-541/logout")
    assert bench.waha.sessions["salon-541"].status == "STOPPED"
    stored = await InboxEvent.filter(source="marketplace").first()
    assert stored is not None and stored.payload["partner_token"] == "***"
    # A repeated delivery is harmless.
    assert await bench.lifecycle(541, "uninstall") == 200
    await settled()
    assert (await company(541)).integration_status is IntegrationStatus.UNINSTALLED
    # YClients also forgets the installation; the owner installs the app again.
    bench.yc.uninstall(541, APP_ID)
    token = await bench.register(541)
    salon = await company(541)
    assert salon.integration_status is IntegrationStatus.PENDING_WHATSAPP
    assert salon.hook_token != old.hook_token and salon.api_key_hash is None
    assert not salon.whatsapp_connected
    await bench.link_whatsapp(541, token)
    status, body = await bench.activate(token)
    assert (status, body["outcome"]) == (200, "activated")
    assert bench.yc.callbacks[-1]["webhook_urls"] == [
        bench.url(f"/webhook/yclients/{salon.hook_token}")
    ]
    assert await bench.lifecycle(541, "uninstall") == 200
    await settled()
    assert (await company(541)).integration_status is IntegrationStatus.UNINSTALLED
    history = await kinds(541)
    assert history.count("uninstall") == 3 and history.count("activated") == 2
    page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
    assert "Приложение удалено" in page


async def test_freeze_is_lifted_only_when_yclients_says_active_again(bench: Bench) -> None:
    await activated_salon(bench, 542)
    assert await bench.lifecycle(542, "freeze") == 200
    await settled()
    assert (await company(542)).integration_status is IntegrationStatus.FROZEN
    bench.yc.set_application_status(542, APP_ID, "frozen")
    client = YClientsClient(bench.yc.url, PARTNER_TOKEN, USER_TOKEN, rate_limit=None)
    async with client:
        report = await sync_all(client, application_id=APP_ID)
        assert (await company(542)).integration_status is IntegrationStatus.FROZEN
        assert (await company(542)).id not in report.synced
        token = await bench.register(542)
        assert (await company(542)).integration_status is IntegrationStatus.FROZEN
        page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
        assert "Подписка на приложение" in page
        bench.yc.set_application_status(542, APP_ID, "active")
        report = await sync_all(client, application_id=APP_ID)
    salon = await company(542)
    assert salon.integration_status is IntegrationStatus.ACTIVE
    assert salon.id in report.synced
    assert "unfrozen" in await kinds(542)


async def test_the_owners_next_redirect_lifts_a_lapsed_freeze(bench: Bench) -> None:
    await activated_salon(bench, 543)
    assert await bench.lifecycle(543, "freeze") == 200
    await settled()
    # The emulator's installation stayed active: the subscription was renewed meanwhile.
    await bench.register(543)
    assert (await company(543)).integration_status is IntegrationStatus.ACTIVE


async def test_unknown_events_and_other_applications_are_stored_and_answered(
    bench: Bench,
) -> None:
    await activated_salon(bench, 544)
    assert await bench.lifecycle(544, "payment_received", amount=990) == 200
    assert await bench.lifecycle(544, "uninstall", application_id=APP_ID + 1) == 200
    assert await bench.lifecycle(99, "uninstall") == 200
    await settled()
    assert (await company(544)).integration_status is IntegrationStatus.ACTIVE
    assert await InboxEvent.filter(source="marketplace", status=InboxStatus.DONE).count() == 3
    history = await kinds(544)
    assert history[-2:] == ["unknown", "other_application"]
    assert await MarketplaceEvent.filter(company_id=None, kind="uninstall").count() == 1


# --- health -------------------------------------------------------------------------------------


async def test_marketplace_health_reports_whether_the_gateway_answers(bench: Bench) -> None:
    body = await (await bench.client.get("/marketplace/health")).json()
    assert body["services"]["whatsapp"]["state"] == "ok" and body["status"] == "ok"
    bench.waha.api_key = "rotated-on-the-gateway"
    response = await bench.client.get("/marketplace/health")
    body = await response.json()
    assert response.status == 200
    whatsapp = body["services"]["whatsapp"]
    assert whatsapp["state"] == "failing" and body["status"] == "degraded"
    assert whatsapp["reason"] == "the WhatsApp gateway refuses WHATSAPP_GATEWAY_API_KEY"
    # /health tells the same from then on.
    health = await (await bench.client.get("/health")).json()
    assert health["status"] == "degraded" and health["parts"]["whatsapp"] == whatsapp


def test_the_forged_user_data_helper_really_needs_url_safe_decoding() -> None:
    import base64

    user_data, _sign = signed_user_data()
    with pytest.raises(ValueError):
        json.loads(base64.b64decode(user_data + "=" * (-len(user_data) % 4)))


# --- command line -------------------------------------------------------------------------------


async def test_company_list_and_show_give_onboarding_status_and_links(
    clean_db: str, tmp_path: Path
) -> None:
    await db.init_orm(clean_db)
    try:
        active = await Company.create(
            yclients_id=777,
            title="Салон «Лилия»",
            hook_token="hook-777",
            integration_status=IntegrationStatus.ACTIVE,
            whatsapp_session="salon-777",
            whatsapp_connected=True,
            whatsapp_phone="+79001234567",
            marketplace_user_name="Ирина",
        )
        await MarketplaceEvent.create(company=active, kind="activated", details={"via": "x"})
        await Company.create(yclients_id=778, title="Новый", hook_token="hook-778")
    finally:
        await db.close_orm()
    env = {
        "DATABASE_URL": clean_db,
        "SECRET_KEY": "k" * 40,
        "DATA_DIR": str(tmp_path / "data"),
        "PUBLIC_BASE_URL": "https://bot.example",
        "TELEGRAM_BOT_USERNAME": BOT,
    }
    code, out, err = await asyncio.to_thread(run_cli, ["company", "list"], env, tmp_path)
    assert code == 0, err
    assert f"links: telegram https://t.me/{BOT}?start=salon-777" in out
    assert "whatsapp https://wa.me/79001234567" in out
    assert "[pending_whatsapp]" in out and "waiting for the owner to link WhatsApp" in out

    code, out, err = await asyncio.to_thread(
        run_cli, ["company", "show", "--yclients-id", "777"], env, tmp_path
    )
    assert code == 0, err
    assert "Салон «Лилия» (YClients 777)" in out
    assert "status:           active" in out
    assert "connected, +79001234567 (session salon-777)" in out
    assert f"telegram link:    https://t.me/{BOT}?start=salon-777" in out
    assert "webhook URL:      https://bot.example/webhook/yclients/hook-777" in out
    assert "activated" in out

    code, _out, err = await asyncio.to_thread(
        run_cli, ["company", "show", "--yclients-id", "1"], env, tmp_path
    )
    assert code == 1 and "no salon with YClients id 1" in err


async def test_check_reports_the_gateway(settings: Settings) -> None:
    async with WahaEmulator(api_key=WAHA_KEY) as waha:
        configured = settings.model_copy(
            update={
                "whatsapp_gateway_url": waha.url,
                "whatsapp_gateway_api_key": SecretStr(WAHA_KEY),
                "whatsapp_webhook_hmac_key": SecretStr(HMAC_KEY),
            }
        )
        assert (await check_whatsapp(configured)).status == "ok"
        wrong = configured.model_copy(update={"whatsapp_gateway_api_key": SecretStr("nope")})
        result = await check_whatsapp(wrong)
        assert result.status == "fail" and "WHATSAPP_GATEWAY_API_KEY" in result.fix
    gone = await check_whatsapp(configured)
    assert gone.status == "fail" and "WHATSAPP_GATEWAY_URL" in gone.fix
    partial = settings.model_copy(update={"whatsapp_gateway_url": "http://127.0.0.1:9"})
    result = await check_whatsapp(partial)
    assert result.status == "fail" and "WHATSAPP_GATEWAY_API_KEY" in result.fix
    assert (await check_whatsapp(settings)).status == "off"
    names = [r.name for r in await run_checks(configured)]
    assert names.count("whatsapp") == 1


async def test_a_late_older_status_event_never_undoes_a_newer_one(bench: Bench) -> None:
    token = await bench.register(514)
    await bench.link_whatsapp(514, token)
    await settled()
    linked = await MarketplaceEvent.get(kind="whatsapp_connected")
    linked_at = int(linked.details["at_ms"])

    async def post(event_id: str, status: str, at_ms: int) -> int:
        body = json.dumps(
            {
                "id": event_id,
                "timestamp": at_ms,
                "event": "session.status",
                "session": "salon-514",
                "me": None,
                "payload": {"status": status},
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Timestamp": str(time.time_ns() // 1_000_000),
            "X-Webhook-Hmac": sign_webhook(body, HMAC_KEY),
            "X-Webhook-Hmac-Algorithm": "sha512",
        }
        response = await bench.client.post("/webhook/whatsapp", data=body, headers=headers)
        return response.status

    assert await post("evt_late", "SCAN_QR_CODE", linked_at - 10_000) == 200
    await settled()
    assert (await company(514)).whatsapp_connected
    assert await post("evt_new", "FAILED", linked_at + 10_000) == 200
    await settled()
    assert not (await company(514)).whatsapp_connected


async def test_an_incomplete_gateway_setting_is_one_log_line_and_whatsapp_stays_off(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    partial = settings.model_copy(update={"whatsapp_gateway_url": "http://127.0.0.1:9"})
    client = await aiohttp_client(create_app(partial))
    assert client.app[WHATSAPP_KEY] is None
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "WHATSAPP_" in r.getMessage()]
    assert lines == [
        (
            "WARNING",
            "whatsapp off: WHATSAPP_GATEWAY_API_KEY is not set, and WHATSAPP_GATEWAY_URL needs "
            "it: set it to the WAHA_API_KEY the WAHA container runs with; "
            "WHATSAPP_WEBHOOK_HMAC_KEY is not set, and WHATSAPP_GATEWAY_URL needs it: set it to "
            "32+ random characters (WAHA signs its webhooks with it)",
        )
    ]
    body = await (await client.get("/marketplace/health")).json()
    assert body["services"]["whatsapp"]["state"] == "off" and body["status"] == "ok"
    response = await client.post("/webhook/whatsapp", data=b"{}")
    assert response.status == 503
