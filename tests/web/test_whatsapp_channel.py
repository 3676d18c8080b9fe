"""The WhatsApp channel through the real app against the WAHA emulator: people write to a
salon's number (signed webhooks, the inbox, the worker) and read what the emulator was asked to
send. Pauses and the send rate limit are off here; bot/ tests cover the manners themselves."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core import codes, db, ledger
from core.clients import create_client
from core.models import (
    Client,
    Company,
    InboxEvent,
    IntegrationStatus,
    LedgerEntry,
    LedgerKind,
    MarketplaceEvent,
    Staff,
    WhatsAppChat,
)
from core.settings import Settings
from core.whatsapp import ensure_whatsapp, sign_webhook
from tests.bot.test_end_to_end import decode_qr, zbarimg
from tests.fakes.telegram import TOKEN, FakeBotAPI, Person
from tests.web.onboarding_support import (
    HMAC_KEY,
    Bench,
    ClientFactory,
    open_bench,
    settled,
    until,
)
from tests.web.test_sync_api_and_cli import run_cli
from web.cron import watchdog_tick
from web.keys import WHATSAPP, WHATSAPP_BOT

# Manners off: answers at once, no rate limit (the benchmark runs the same way).
NO_MANNERS = {"whatsapp_reply_pause": 0.0, "whatsapp_send_rate": 0.0}
SALON_PHONE = "79001234567"
ANNA = "79991234567@c.us"
SERVICES = [
    {"id": 11, "title": "Стрижка", "price_min": 1500, "price_max": 1500},
    {"id": 12, "title": "Окрашивание", "price_min": 3000, "price_max": 6000},
]


@pytest.fixture
async def bench(aiohttp_client: ClientFactory, settings: Settings) -> AsyncIterator[Bench]:
    async with open_bench(aiohttp_client, settings, settings_update=NO_MANNERS) as bench:
        yield bench


async def make_salon(
    yclients_id: int = 901,
    status: IntegrationStatus = IntegrationStatus.ACTIVE,
    title: str = "Салон Ромашка",
) -> Company:
    return await Company.create(
        yclients_id=yclients_id,
        title=title,
        hook_token=secrets.token_urlsafe(16),
        integration_status=status,
        # A whole bill may be paid with bonuses: no bill to ask for (the cap is tested in
        # tests/bot/test_redeem_cap.py).
        max_redeem_percent=100,
        bookform_url=f"https://n{100_000 + yclients_id}.yclients.com/",
        catalogue={"services": SERVICES, "staff": []},
    )


async def link(bench: Bench, company: Company) -> str:
    """The salon's number linked through the gateway, as the onboarding page does it."""
    gateway = bench.client.app[WHATSAPP]
    assert gateway is not None
    await ensure_whatsapp(company, gateway, bench.base_url, restart_failed=False)
    name = f"salon-{company.yclients_id}"
    await until(lambda: bench.waha.sessions[name].status == "SCAN_QR_CODE")
    await bench.waha.scan(name, phone=SALON_PHONE)
    await bench.waha.drain()
    await settled()
    return name


async def salon(bench: Bench, yclients_id: int = 901, **kwargs: Any) -> str:
    return await link(bench, await make_salon(yclients_id, **kwargs))


async def idle(bench: Bench) -> None:
    channel = bench.client.app[WHATSAPP_BOT]
    assert channel is not None
    await settled()
    await channel.outbox.idle()


async def say(
    bench: Bench, session: str, sender: str, text: str, **kwargs: Any
) -> list[dict[str, Any]]:
    """A person writes; what the salon's number sent back (to anyone)."""
    start = len(bench.waha.sent)
    await bench.waha.incoming_message(session, sender, text, **kwargs)
    await idle(bench)
    return bench.waha.sent[start:]


def texts(sent: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("text") or m.get("caption") or "") for m in sent)


async def client_with_balance(
    company_id: int, phone: str, balance: int, name: str = "Мария Иванова"
) -> Client:
    company = await Company.get(id=company_id)
    client = (await create_client(company, phone=phone, name=name, welcome=False)).client
    if balance:
        await ledger.accrue(client.id, balance, f"seed:{client.id}")
        client.balance = balance
    return client


async def company_of(session: str) -> Company:
    return await Company.get(whatsapp_session=session)


# --- clients ------------------------------------------------------------------------------------


async def test_a_new_number_is_greeted_with_the_menu_and_joins_by_its_verified_phone(
    bench: Bench,
) -> None:
    session = await salon(bench)
    sent = await say(bench, session, ANNA, "привет")
    assert [m["chatId"] for m in sent] == [ANNA] and sent[0]["type"] == "text"
    text = sent[0]["text"]
    assert "Добро пожаловать! Это Салон Ромашка" in text
    for line in ("1 — 📅 Записаться", "2 — 🎁 Бонусы", "3 — 🔑 Мой код", "4 — 🗓 Визиты"):
        assert line in text
    assert "5 — 🌐 Язык" in text and "0 — ☰ Меню" in text
    assert "Для сотрудников" not in text
    # Seen, and answered at the sender's own id; never asked to share the phone.
    assert bench.waha.seen[-1]["chatId"] == ANNA
    assert "номер" not in text
    client = await Client.get(whatsapp_chat_id=ANNA)
    assert client.phone == "+79991234567" and client.last_channel == "whatsapp"

    sent = await say(bench, session, ANNA, "как дела?")
    assert "Не понял" in texts(sent) and "2 — 🎁 Бонусы" in texts(sent)


async def test_a_client_known_from_yclients_sees_bonuses_code_booking_and_visits(
    bench: Bench, tmp_path: Path
) -> None:
    zbarimg()
    session = await salon(bench)
    known = await client_with_balance((await company_of(session)).id, "+79991234567", 150)

    sent = await say(bench, session, ANNA, "Здравствуйте!")
    # Known from YClients, but writing for the first time: welcomed, not welcomed back.
    assert "Добро пожаловать! Это Салон Ромашка" in texts(sent)
    assert "Ваш баланс: 150 бонусов." in texts(sent)
    assert await Client.filter(phone="+79991234567").count() == 1
    assert (await Client.get(id=known.id)).whatsapp_chat_id == ANNA

    sent = await say(bench, session, ANNA, "2")
    assert "Ваш баланс: 150 бонусов." in texts(sent) and "+150" in texts(sent)
    assert "0 — ☰ Меню" in texts(sent)
    assert "Ваш баланс: 150 бонусов." in texts(await say(bench, session, ANNA, "Баланс!"))
    assert "Ваш баланс" in texts(await say(bench, session, ANNA, "balance"))

    sent = await say(bench, session, ANNA, "3")
    (image,) = sent
    assert image["type"] == "image" and image["mimetype"] == "image/png"
    assert codes.display(known.code) in image["caption"]
    assert decode_qr(image["image"], tmp_path) == codes.display(known.code)
    assert (await say(bench, session, ANNA, "код"))[0]["type"] == "image"

    booking = texts(await say(bench, session, ANNA, "1"))
    assert "https://n100901.yclients.com/" in booking
    assert "Стрижка — 1 500 ₽: https://n100901.yclients.com/company/901/personal/menu?o=s11" in (
        booking.replace("\u00a0", " ")
    )
    visits = texts(await say(bench, session, ANNA, "4"))
    assert "Визитов пока нет." in visits and "1 — 📅 Записаться на визит" in visits
    assert "https://n100901.yclients.com/" in texts(await say(bench, session, ANNA, "1"))


async def test_language_is_a_numbered_choice_and_sticks(bench: Bench) -> None:
    session = await salon(bench)
    await say(bench, session, ANNA, "привет")
    sent = await say(bench, session, ANNA, "5")
    assert "Выберите язык:" in texts(sent)
    assert "1 — Русский" in texts(sent) and "2 — English" in texts(sent)
    sent = await say(bench, session, ANNA, "2")
    assert "Language: English." in texts(sent) and "2 — 🎁 Bonuses" in texts(sent)
    # Numbers mean the menu again once the choice is made.
    assert "Your balance: 0 points." in texts(await say(bench, session, ANNA, "2"))
    assert (await Client.get(whatsapp_chat_id=ANNA)).locale == "en"
    assert "Язык: Русский." in texts(await say(bench, session, ANNA, "русский"))


async def test_media_own_messages_groups_and_broadcasts(bench: Bench) -> None:
    session = await salon(bench)
    await say(bench, session, ANNA, "привет")
    sent = await say(bench, session, ANNA, "", has_media=True)
    assert [m["chatId"] for m in sent] == [ANNA]
    assert "только текстовые сообщения" in texts(sent)
    # A photo with a caption is read by its caption.
    assert "Ваш баланс" in texts(await say(bench, session, ANNA, "баланс", has_media=True))
    for sender, kwargs in (
        (ANNA, {"from_me": True}),
        ("120363025246125486@g.us", {}),
        ("status@broadcast", {}),
        ("120363025246125487@newsletter", {}),
    ):
        assert await say(bench, session, sender, "2", **kwargs) == []
    assert await Client.all().count() == 1


# --- @lid senders -------------------------------------------------------------------------------


async def test_a_lid_sender_is_answered_at_its_id_and_joins_by_the_phone_behind_it(
    bench: Bench,
) -> None:
    session = await salon(bench)
    known = await client_with_balance((await company_of(session)).id, "+79991112233", 70)
    lid = "251452364652653@lid"
    bench.waha.lids[lid] = "79991112233"
    sent = await say(bench, session, lid, "баланс")
    assert {m["chatId"] for m in sent} == {lid}
    assert "Ваш баланс: 70 бонусов." in texts(sent)
    client = await Client.get(id=known.id)
    assert client.whatsapp_chat_id == lid
    assert (await WhatsAppChat.get(chat_id=lid)).phone == "+79991112233"
    assert bench.waha.calls_to("GET", f"/api/{session}/lids/{lid}")


async def test_a_lid_whose_phone_stays_hidden_cannot_reach_another_clients_balance(
    bench: Bench,
) -> None:
    session = await salon(bench)
    company = await company_of(session)
    other = await client_with_balance(company.id, "+79991112233", 500)
    await Staff.create(company=company, phone="+79995550000", name="Ольга")
    lid = "99887766554433@lid"
    bench.waha.lids[lid] = None

    sent = await say(bench, session, lid, "привет")
    assert {m["chatId"] for m in sent} == {lid}
    assert "Добро пожаловать" in texts(sent)
    mine = await Client.get(whatsapp_chat_id=lid)
    assert mine.phone is None and mine.id != other.id and mine.balance == 0
    # The booking link and the code work without a phone.
    assert "https://n100901.yclients.com/" in texts(await say(bench, session, lid, "1"))
    assert codes.display(mine.code) in texts(await say(bench, session, lid, "3"))
    # A typed phone or someone else's code opens nothing.
    for attempt in ("+7 999 111-22-33", "89991112233", codes.display(other.code)):
        sent = await say(bench, session, lid, attempt)
        assert "500" not in texts(sent) and "Не понял" in texts(sent)
    assert "Ваш баланс: 0 бонусов." in texts(await say(bench, session, lid, "2"))
    # Nor can it pass for staff by typing their number.
    sent = await say(bench, session, lid, f"списать {codes.display(other.code)} 100")
    assert "Не понял" in texts(sent)
    assert (await Client.get(id=other.id)).whatsapp_chat_id is None
    assert await LedgerEntry.filter(kind=LedgerKind.REDEMPTION).count() == 0

    # Once WhatsApp shows the number, the untouched card steps aside for the salon's client.
    bench.waha.lids[lid] = "79991112233"
    await WhatsAppChat.filter(chat_id=lid).update(lid_checked_at=None)
    assert "Ваш баланс: 500 бонусов." in texts(await say(bench, session, lid, "2"))
    assert (await Client.get(id=other.id)).whatsapp_chat_id == lid


# --- staff --------------------------------------------------------------------------------------


async def test_staff_added_by_phone_redeem_with_confirmation_once_and_both_are_told(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    await db.init_orm(settings.db_url)
    try:
        company = await make_salon(902)
    finally:
        await db.close_orm()
    env = {"DATABASE_URL": settings.db_url, "SECRET_KEY": "k" * 40, "DATA_DIR": str(tmp_path)}
    add = ["staff", "add", "--company", "902", "--phone", "+7 999 555-00-00", "--name", "Ольга"]
    code, out, err = await asyncio.to_thread(run_cli, add, env, tmp_path)
    assert code == 0, err
    assert "phone +79995550000" in out

    async with open_bench(aiohttp_client, settings, settings_update=NO_MANNERS) as bench:
        session = await link(bench, company)
        staff_chat = "79995550000@c.us"
        await say(bench, session, ANNA, "привет")  # the client writes first
        client = await Client.get(whatsapp_chat_id=ANNA)
        await ledger.accrue(client.id, 800, "seed")
        await Client.filter(id=client.id).update(name="Анна Смирнова")

        greeting = texts(await say(bench, session, staff_chat, "привет"))
        assert "Для сотрудников: «списать КОД СУММА»" in greeting

        shown = codes.display(client.code)
        sent = await say(bench, session, staff_chat, f"списать {shown} 500")
        assert [m["chatId"] for m in sent] == [staff_chat]
        card = texts(sent)
        assert "Списать 500 бонусов у Анны," in card and "Смирнов" not in card
        assert "+7 *** ***-45-67" in card and "800" in card and "300" in card
        assert "Ответьте «да»" in card

        sent = await say(bench, session, staff_chat, "да")
        by_chat = {m["chatId"]: m["text"] for m in sent}
        assert "Готово, списано бонусов: 500 (Анна). Новый баланс: 300." in by_chat[staff_chat]
        assert "Списано бонусов: 500." in by_chat[ANNA] and "300" in by_chat[ANNA]
        # A second «да», and the same «да» delivered again, debit nothing more.
        await say(bench, session, staff_chat, "да")
        assert await bench.waha.resend_last_event(fresh_timestamp=True) == 200
        await idle(bench)
        assert await LedgerEntry.filter(kind=LedgerKind.REDEMPTION).count() == 1
        assert (await Client.get(id=client.id)).balance == 300

        # «redeem» in English, cancelled with «нет».
        await say(bench, session, staff_chat, f"redeem {client.code} 100")
        assert "Отменено" in texts(await say(bench, session, staff_chat, "нет"))
        # A confirmation older than two minutes is refused (the dialog keeps the time of the
        # question with the pending redeem, in every channel).
        await say(bench, session, staff_chat, f"списать {shown} 100")
        chat = await WhatsAppChat.get(chat_id=staff_chat)
        chat.data["redeem"]["at"] = time.time() - 121
        await WhatsAppChat.filter(id=chat.id).update(data=chat.data)
        assert "истекли" in texts(await say(bench, session, staff_chat, "да"))
        assert await LedgerEntry.filter(kind=LedgerKind.REDEMPTION).count() == 1

        # Step by step: the code, then the amount; an amount above the balance is refused.
        await say(bench, session, staff_chat, "списать")
        assert "300" in texts(await say(bench, session, staff_chat, shown))
        assert "Недостаточно" in texts(await say(bench, session, staff_chat, "5000"))
        assert "Отменено" in texts(await say(bench, session, staff_chat, "0"))


async def test_staff_code_guessing_is_locked_out_as_in_telegram(bench: Bench) -> None:
    session = await salon(bench)
    company = await company_of(session)
    await Staff.create(company=company, phone="+79995550000", name="Ольга")
    staff_chat = "79995550000@c.us"
    await say(bench, session, staff_chat, "привет")
    other_salon = await make_salon(903, title="Другой")
    foreign = (await create_client(other_salon, phone="+79990000001", welcome=False)).client
    for wrong in ("ZZZZZZZZZ", "7KQM2X9PA", codes.display(foreign.code), "AAAA"):
        sent = await say(bench, session, staff_chat, f"списать {wrong} 100")
        assert "Клиент не найден" in texts(sent), wrong
    # The fifth wrong code locks, and says so.
    locked = texts(await say(bench, session, staff_chat, "списать 1234 100"))
    assert "Слишком много неверных кодов" in locked
    locked = texts(await say(bench, session, staff_chat, f"redeem {foreign.code} 100"))
    assert "Слишком много неверных кодов" in locked
    # A client writing the same words is just not understood.
    assert "Не понял" in texts(await say(bench, session, ANNA, f"списать {foreign.code} 1"))


# --- the webhook's guards -----------------------------------------------------------------------


async def test_a_wrong_hmac_or_a_replayed_message_changes_nothing(bench: Bench) -> None:
    session = await salon(bench)
    await say(bench, session, ANNA, "привет")
    delivered = bench.waha.deliveries[-1]
    assert delivered.event["event"] == "message"
    events, sent, clients = await InboxEvent.all().count(), len(bench.waha.sent), 1
    now_ms = str(time.time_ns() // 1_000_000)
    fresh = {**delivered.headers, "X-Webhook-Timestamp": now_ms}

    forged = {**fresh, "X-Webhook-Hmac": sign_webhook(delivered.body, "wrong-key")}
    response = await bench.client.post("/webhook/whatsapp", data=delivered.body, headers=forged)
    assert response.status == 401
    other = delivered.body.replace(b"79991234567@c.us", b"79990000002@c.us")
    response = await bench.client.post("/webhook/whatsapp", data=other, headers=fresh)
    assert response.status == 401
    # Replayed byte for byte (fresh timestamp), and re-reported under a new event id.
    assert await bench.waha.resend_last_event(fresh_timestamp=True) == 200
    event = json.loads(delivered.body)
    event["id"] = "evt_" + secrets.token_hex(8)
    body = json.dumps(event).encode()
    again = {**fresh, "X-Webhook-Hmac": sign_webhook(body, HMAC_KEY)}
    response = await bench.client.post("/webhook/whatsapp", data=body, headers=again)
    assert response.status == 200 and (await response.json())["duplicate"] is True
    await idle(bench)
    assert await InboxEvent.all().count() == events
    assert len(bench.waha.sent) == sent
    assert await Client.all().count() == clients


# --- salons that left or paused -----------------------------------------------------------------


async def test_frozen_uninstalled_and_pending_salons(bench: Bench) -> None:
    frozen = await salon(bench, 911, status=IntegrationStatus.FROZEN)
    sent = await say(bench, frozen, ANNA, "2")
    assert [m["chatId"] for m in sent] == [ANNA]
    assert "Бот салона временно приостановлен" in texts(sent)
    gone = await salon(bench, 912, status=IntegrationStatus.UNINSTALLED)
    assert "Этот салон больше не пользуется ботом" in texts(await say(bench, gone, ANNA, "2"))
    pending = await salon(bench, 913, status=IntegrationStatus.PENDING_WHATSAPP)
    assert await say(bench, pending, ANNA, "2") == []
    assert await Client.all().count() == 0 and await WhatsAppChat.all().count() == 0


# --- the watchdog -------------------------------------------------------------------------------


async def test_the_watchdog_restarts_a_failed_session_up_to_the_cap_then_alerts(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    async with FakeBotAPI() as telegram:
        update = {
            **NO_MANNERS,
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_url": telegram.url,
            "telegram_mode": "polling",
        }
        async with open_bench(aiohttp_client, settings, settings_update=update) as bench:
            session = await salon(bench, 921)
            company = await company_of(session)
            await Staff.create(company=company, telegram_user_id=5001, role="admin")
            await Staff.create(company=company, telegram_user_id=5002, role="staff")
            app = bench.client.app

            report = await watchdog_tick(app)
            assert report is not None and report.checked == 1 and not report.restarted

            for attempt in range(1, 4):
                await bench.waha.fail_session(session)
                await bench.waha.drain()
                report = await watchdog_tick(app)
                assert report is not None and report.restarted == [company.id], attempt
                await until(lambda: bench.waha.sessions[session].status == "WORKING")
                assert len((await company_of(session)).whatsapp_restarts) == attempt
            restarts = bench.waha.calls_to("POST", f"/api/sessions/{session}/restart")
            assert len(restarts) == 3
            # The second and third restarts did not keep it up: the admin heard of it once.
            alerts = telegram.calls_to("sendMessage")
            assert [c.params["chat_id"] for c in alerts] == [5001]
            assert "перезапуск не помог" in alerts[0].params["text"]

            await bench.waha.fail_session(session)
            await bench.waha.drain()
            report = await watchdog_tick(app)
            assert report is not None and report.restarted == []
            assert len(bench.waha.calls_to("POST", f"/api/sessions/{session}/restart")) == 3
            assert not (await company_of(session)).whatsapp_connected
            assert await MarketplaceEvent.filter(kind="whatsapp_restarted").count() == 3

            # The owner links again (a new code on the onboarding page): it works; told so.
            await app[WHATSAPP].restart(session)  # type: ignore[union-attr]
            await until(lambda: bench.waha.sessions[session].status == "WORKING")
            report = await watchdog_tick(app)
            assert report is not None and [a.trouble for a in report.alerts] == ["recovered"]
            await telegram.wait_for("sendMessage", lambda c: "снова работает" in c.params["text"])

            # Unlinked from the phone: not restarted, the admin is told to link again.
            await app[WHATSAPP].logout(session)  # type: ignore[union-attr]
            await until(lambda: bench.waha.sessions[session].status == "SCAN_QR_CODE")
            report = await watchdog_tick(app)
            assert report is not None and [a.trouble for a in report.alerts] == ["unlinked"]
            assert report.restarted == []
            unlinked = "отключён на телефоне"
            await telegram.wait_for("sendMessage", lambda c: unlinked in c.params["text"])
    env = {"DATABASE_URL": settings.db_url, "SECRET_KEY": "k" * 40, "DATA_DIR": str(tmp_path)}
    code, out, err = await asyncio.to_thread(run_cli, ["company", "list"], env, tmp_path)
    assert code == 0, err
    assert "[active]  whatsapp disconnected" in out
    assert "whatsapp down: clients get no answers there" in out


# --- one client, two channels -------------------------------------------------------------------


async def test_one_client_in_telegram_and_whatsapp_has_one_balance_and_notices_follow(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with FakeBotAPI() as telegram:
        update = {
            **NO_MANNERS,
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_url": telegram.url,
            "telegram_mode": "polling",
        }
        async with open_bench(aiohttp_client, settings, settings_update=update) as bench:
            session = await salon(bench, 931)
            company = await company_of(session)
            await Staff.create(company=company, phone="+79995550000", name="Ольга")
            anna = Person(7001, "Анна")

            def to_anna(text: str) -> Any:
                return lambda c: (
                    c.params.get("chat_id") == anna.id and text in str(c.params.get("text") or "")
                )

            await telegram.wait_for("deleteWebhook")
            telegram.push(anna.says("/start salon-931"))
            await telegram.wait_for("sendMessage", to_anna("поделитесь номером"))
            telegram.push(anna.shares_contact("79991234567"))
            await telegram.wait_for("sendMessage", to_anna("номер сохранён"))
            client = await Client.get(telegram_user_id=anna.id)
            await ledger.accrue(client.id, 400, "seed")

            sent = await say(bench, session, ANNA, "2")
            assert "Ваш баланс: 400 бонусов." in texts(sent)
            joined = await Client.get(id=client.id)
            assert joined.whatsapp_chat_id == ANNA and joined.telegram_user_id == anna.id
            assert joined.last_channel == "whatsapp"
            assert await Client.filter(company_id=company.id).count() == 1

            # A staff member redeems over WhatsApp: the notice goes to WhatsApp, used last.
            staff_chat = "79995550000@c.us"
            await say(bench, session, staff_chat, f"списать {client.code} 100")
            sent = await say(bench, session, staff_chat, "да")
            assert any(m["chatId"] == ANNA and "Новый" not in m["text"] for m in sent)
            assert "Ваш баланс: 300" in texts([m for m in sent if m["chatId"] == ANNA])

            # Back in Telegram: the same balance, and the next notice goes there.
            calls = len(telegram.calls)
            telegram.push(anna.says("/balance"))
            await telegram.wait_for("sendMessage", to_anna("Ваш баланс: 300"), after=calls)
            assert (await Client.get(id=client.id)).last_channel == "telegram"
            before = len(bench.waha.sent)
            await say(bench, session, staff_chat, f"списать {client.code} 50")
            await say(bench, session, staff_chat, "да")
            await telegram.wait_for("sendMessage", to_anna("Списано бонусов: 50"), after=calls)
            assert not [m for m in bench.waha.sent[before:] if m["chatId"] == ANNA]
