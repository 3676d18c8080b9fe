"""Clients in Telegram, at dispatcher level: the outgoing Bot API calls and the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiogram.methods import SendMessage, SendPhoto

from core import codes, ledger
from core.clients import create_client
from core.models import Booking, BookingStatus, Client, Company, IntegrationStatus, LedgerKind
from core.notifications import BalanceNotice
from tests.bot.conftest import (
    Harness,
    answered,
    buttons,
    client_with_balance,
    join,
    keyboard,
    make_salon,
    said,
)
from tests.fakes.telegram import Person

ANNA = Person(7001, "Анна")


async def test_start_with_the_salon_link_greets_and_asks_for_the_phone(
    tg: Harness, salon: Company
) -> None:
    sent = await tg.say(ANNA, f"/start salon-{salon.yclients_id}")
    assert all(isinstance(m, SendMessage) and m.chat_id == ANNA.id for m in sent)
    assert "Салон Ромашка" in said(sent)
    contact = keyboard(sent)
    assert contact is not None and contact.keyboard[0][0].request_contact
    assert not await Client.exists()


async def test_without_a_link_a_stranger_is_told_how_to_find_the_salon(tg: Harness) -> None:
    sent = await tg.say(ANNA, "/start")
    assert "ссылк" in said(sent)
    sent = await tg.say(ANNA, "/start salon-999999")
    assert "недействительна" in said(sent)


async def test_own_contact_creates_the_client_with_a_normalised_phone_and_welcome_bonus(
    tg: Harness, orm: str
) -> None:
    company = await make_salon(welcome_bonus=100)
    await tg.say(ANNA, f"/start salon-{company.yclients_id}")
    sent = await tg.feed(ANNA.shares_contact("79991234567"))
    client = await Client.get(company_id=company.id, telegram_user_id=ANNA.id)
    assert client.phone == "+79991234567" and client.balance == 100
    assert client.last_channel == "telegram" and client.name == "Анна"
    assert "100" in said(sent)
    menu = keyboard(sent)
    assert menu is not None and any("Бонусы" in b.text for row in menu.keyboard for b in row)


async def test_someone_elses_contact_is_refused(tg: Harness, salon: Company) -> None:
    await tg.say(ANNA, f"/start salon-{salon.yclients_id}")
    sent = await tg.feed(ANNA.shares_contact("+79990000000", user_id=999))
    assert "своим номером" in said(sent)
    assert not await Client.exists()


async def test_contact_joins_the_client_the_yclients_sync_created(
    tg: Harness, salon: Company
) -> None:
    synced = (
        await create_client(salon, phone="+79991234567", name="Анна П.", welcome=False)
    ).client
    await ledger.accrue(synced.id, 150, "visit:1")
    await join(tg, ANNA, salon, "+7 (999) 123-45-67")
    assert await Client.filter(company_id=salon.id).count() == 1
    joined = await Client.get(id=synced.id)
    assert joined.telegram_user_id == ANNA.id and joined.balance == 150


async def test_book_asks_for_the_phone_first_then_gives_the_links(
    tg: Harness, salon: Company
) -> None:
    await tg.say(ANNA, f"/start salon-{salon.yclients_id}")
    sent = await tg.say(ANNA, "📅 Записаться")
    assert keyboard(sent) is not None and keyboard(sent).keyboard[0][0].request_contact  # type: ignore[union-attr]
    assert not buttons(sent)
    sent = await tg.feed(ANNA.shares_contact("+79991234567"))
    links = {text: url for text, _data, url in buttons(sent)}
    assert links["📅 Открыть онлайн-запись"] == "https://n100555.yclients.com/"
    assert (
        links["Стрижка — 1\u00a0500\u00a0₽"]
        == "https://n100555.yclients.com/company/555/personal/menu?o=s11"
    )
    assert "Окрашивание — от 3\u00a0000\u00a0₽" in links
    assert "Маникюр" in links  # no price known: the title alone


async def test_bonuses_show_balance_and_five_entries_with_a_button_for_more(
    tg: Harness, salon: Company
) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    for n in range(7):
        await ledger.accrue(client.id, 10 + n, f"visit:{n}")
    sent = await tg.say(ANNA, "🎁 Бонусы")
    text = said(sent)
    assert "Ваш баланс: 91 бонус." in text
    assert "+16" in text and "+12" in text and "+11" not in text
    (more,) = buttons(sent)
    assert more[1] is not None and more[1].startswith("hist:")
    sent = await tg.press(ANNA, more[1])
    assert answered(sent)
    assert "+11" in said(sent) and "+10" in said(sent) and "+12" not in said(sent)
    assert not buttons(sent)


async def test_visits_list_upcoming_and_recent_with_the_bonus_earned(
    tg: Harness, salon: Company
) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    now = datetime.now(UTC)
    await Booking.create(
        company=salon,
        client=client,
        yclients_record_id=1,
        visit_at=now + timedelta(days=2),
        services=[{"title": "Стрижка"}],
        staff_name="Мария",
        status=BookingStatus.CONFIRMED,
    )
    past = await Booking.create(
        company=salon,
        client=client,
        yclients_record_id=2,
        visit_at=now - timedelta(days=3),
        services=[{"title": "Маникюр"}],
        cost=1800,
        status=BookingStatus.COMPLETED,
    )
    await ledger.accrue(client.id, 180, "booking:x", booking_id=past.id)
    text = said(await tg.say(ANNA, "🗓 Визиты"))
    assert "Ближайшие" in text and "Стрижка" in text and "Мария" in text
    assert "Маникюр" in text and "+180" in text


async def test_my_code_is_text_and_a_qr_photo(tg: Harness, salon: Company) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    sent = await tg.say(ANNA, "🔑 Мой код")
    (photo,) = [m for m in sent if isinstance(m, SendPhoto)]
    assert codes.display(client.code) in (photo.caption or "")
    assert photo.photo.data.startswith(b"\x89PNG")  # type: ignore[union-attr]


async def test_language_is_stored_and_wins_over_telegrams(tg: Harness, salon: Company) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    sent = await tg.say(ANNA, "🌐 Язык")
    assert ("English", "lang:en", None) in buttons(sent)
    sent = await tg.press(ANNA, "lang:en")
    assert "Language: English" in said(sent)
    menu = keyboard(sent)
    assert menu is not None and any(b.text == "🎁 Bonuses" for row in menu.keyboard for b in row)
    assert (await Client.get(id=client.id)).locale == "en"
    # Telegram still says ru; the stored choice wins, and the old labels still work.
    assert "Your balance" in said(await tg.say(ANNA, "🎁 Бонусы"))


async def test_telegrams_language_is_used_until_one_is_chosen(tg: Harness, salon: Company) -> None:
    john = Person(7002, "John", language_code="en-US")
    sent = await tg.say(john, f"/start salon-{salon.yclients_id}")
    assert "Welcome to Салон Ромашка" in said(sent)


async def test_unknown_text_and_stickers_get_the_menu(tg: Harness, salon: Company) -> None:
    await join(tg, ANNA, salon, "+79991234567")
    sent = await tg.say(ANNA, "как дела?")
    assert "Не понял" in said(sent) and keyboard(sent) is not None
    sent = await tg.feed(
        ANNA._message(
            sticker={
                "file_id": "x",
                "file_unique_id": "y",
                "type": "regular",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
            }
        )
    )
    assert "Не понял" in said(sent)


async def test_a_returning_client_without_a_link_is_welcomed_back(
    tg: Harness, salon: Company
) -> None:
    await join(tg, ANNA, salon, "+79991234567")
    tg.dp.fsm.storage = type(tg.dp.fsm.storage)()  # the FSM was lost (a restart)
    sent = await tg.say(ANNA, "/start")
    assert "С возвращением" in said(sent)


async def test_a_client_of_two_salons_chooses_one(tg: Harness, salon: Company) -> None:
    other = await make_salon(777, title="Студия Лилия")
    await join(tg, ANNA, salon, "+79991234567")
    await join(tg, ANNA, other, "+79991234567")
    tg.dp.fsm.storage = type(tg.dp.fsm.storage)()
    sent = await tg.say(ANNA, "/start")
    choices = {text: data for text, data, _url in buttons(sent)}
    assert set(choices) == {"Салон Ромашка", "Студия Лилия"}
    sent = await tg.press(ANNA, choices["Студия Лилия"] or "")
    assert "Студия Лилия" in said(sent)


async def test_a_frozen_salon_explains_itself(tg: Harness, orm: str) -> None:
    company = await make_salon(status=IntegrationStatus.FROZEN)
    sent = await tg.say(ANNA, f"/start salon-{company.yclients_id}")
    assert "приостановлен" in said(sent)


async def test_notices_go_to_telegram_in_the_clients_language(tg: Harness, salon: Company) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    await Client.filter(id=client.id).update(locale="en")
    result = await ledger.accrue(client.id, 150, "visit:1")
    start = len(tg.session.requests)
    await tg.dialog.notifier.notify([BalanceNotice.from_result(result)])
    (notice,) = tg.session.sent(start)
    assert isinstance(notice, SendMessage) and notice.chat_id == ANNA.id
    assert "Bonus points earned: 150" in notice.text


async def test_a_client_who_blocked_the_bot_is_marked_unreachable_and_skipped(
    tg: Harness, salon: Company
) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    tg.session.blocked_chats.add(ANNA.id)
    first = await ledger.accrue(client.id, 10, "visit:1")
    await tg.dialog.notifier.notify([BalanceNotice.from_result(first)])
    assert "telegram" in (await Client.get(id=client.id)).unreachable
    start = len(tg.session.requests)
    second = await ledger.accrue(client.id, 10, "visit:2")
    await tg.dialog.notifier.notify([BalanceNotice.from_result(second)])
    assert tg.session.sent(start) == []  # not tried again
    # Writing to the bot again means it is unblocked.
    tg.session.blocked_chats.clear()
    await tg.say(ANNA, "🎁 Бонусы")
    assert (await Client.get(id=client.id)).unreachable == {}


async def test_blocking_the_bot_is_noticed_from_telegrams_update(
    tg: Harness, salon: Company
) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    await tg.feed(ANNA.blocks_bot())
    assert "telegram" in (await Client.get(id=client.id)).unreachable


async def test_staff_commands_are_unknown_to_a_client(tg: Harness, salon: Company) -> None:
    other = await client_with_balance(salon, "+79990001122", 500)
    await join(tg, ANNA, salon, "+79991234567")
    for text in (
        "/redeem",
        f"/redeem {other.code} 100",
        "/lookup +79990001122",
        f"/adjust {other.code} +100 gift",
        "💳 Списать бонусы",
        other.code,
    ):
        assert "Не понял" in said(await tg.say(ANNA, text)), text
    sent = await tg.press(ANNA, f"aj:{other.id}")
    assert "Не понял" in said(sent)
    sent = await tg.press(ANNA, "rc:forgedtoken")
    assert "больше не действует" in said(sent) or "недействителен" in said(sent)
    assert (await Client.get(id=other.id)).balance == 500
    assert not await ledger.history(other.id, limit=10) or all(
        e.kind is LedgerKind.ACCRUAL for e in await ledger.history(other.id, limit=10)
    )


async def test_a_notice_falls_back_to_telegram_when_the_last_channel_is_off(
    tg: Harness, salon: Company
) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    # Since then the client wrote from WhatsApp, which is off here: Telegram still reaches
    # them (tests/bot/test_delivery.py has the order with both channels on).
    await Client.filter(id=client.id).update(last_channel="whatsapp", whatsapp_chat_id="7@c.us")
    result = await ledger.accrue(client.id, 10, "visit:1")
    start = len(tg.session.requests)
    await tg.dialog.notifier.notify([BalanceNotice.from_result(result)])
    (notice,) = tg.session.sent(start)
    assert isinstance(notice, SendMessage) and notice.chat_id == ANNA.id
    # Writing in Telegram again makes it the channel.
    await tg.say(ANNA, "🎁 Бонусы")
    assert (await Client.get(id=client.id)).last_channel == "telegram"
