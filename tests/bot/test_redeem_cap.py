"""Issue 14: bonuses pay at most `max_redeem_percent` of a bill. With the client's record for
today the bill is its cost (shown to staff with the most they may take); without one staff say
the bill. Telegram's dispatcher, both databases."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.methods import TelegramMethod

from core import codes
from core.models import (
    Booking,
    BookingStatus,
    Client,
    Company,
    LedgerEntry,
    LedgerKind,
    Staff,
)
from tests.bot.conftest import Harness, buttons, client_with_balance, make_salon, make_staff, said
from tests.fakes.telegram import Person
from tests.regressions.test_whatsapp_staff_redelivery import SESSION, STAFF_CHAT, Chat

OLGA = Person(8001, "Ольга")
MSK = ZoneInfo("Europe/Moscow")
# 12:00 in Moscow: the dialog's clock, so "today" does not depend on when the test runs.
NOON = datetime(2026, 11, 20, 12, 0, tzinfo=MSK)


def confirm(sent: list[TelegramMethod[Any]]) -> str:
    found = [d for _t, d, _u in buttons(sent) if d and d.startswith("rc:")]
    assert found, f"no confirmation in {said(sent)!r}"
    return found[0]


async def setting_up(tg: Harness, balance: int, percent: int = 30) -> tuple[Company, Client]:
    tg.dialog.clock = NOON.timestamp
    salon = await make_salon(max_redeem_percent=percent)
    await make_staff(salon, OLGA)
    client = await client_with_balance(salon, "+79991234567", balance, name="Екатерина Иванова")
    return salon, client


async def record(
    salon: Company,
    client: Client,
    at: datetime,
    cost: int,
    status: BookingStatus = BookingStatus.CONFIRMED,
    record_id: int = 1,
) -> Booking:
    return await Booking.create(
        company=salon,
        client=client,
        yclients_record_id=record_id,
        visit_at=at,
        cost=cost,
        status=status,
        services=[{"title": "Стрижка"}],
    )


async def redeemed(client: Client) -> list[int]:
    return list(
        await LedgerEntry.filter(client_id=client.id, kind=LedgerKind.REDEMPTION).values_list(
            "amount", flat=True
        )
    )


async def test_with_a_record_today_staff_see_its_cost_and_the_cap(tg: Harness) -> None:
    salon, client = await setting_up(tg, 1000)
    await record(salon, client, NOON.replace(hour=15), 2000)
    # Yesterday's dearer record is not today's bill.
    await record(salon, client, NOON.replace(day=19), 9000, record_id=2)
    card = said(await tg.say(OLGA, f"/redeem {codes.display(client.code)}"))
    assert "Визит сегодня в 15:00, Стрижка: 2\u00a0000\u00a0₽. Бонусами можно оплатить до 600." in (
        card
    )
    refused = said(await tg.say(OLGA, "700"))
    assert "не больше 30\u00a0% счёта: не больше 600 из 2\u00a0000\u00a0₽" in refused
    sent = await tg.say(OLGA, "600")
    assert "Списать 600 бонусов у Екатерины, +7 *** ***-45-67?" in said(sent)
    await tg.press(OLGA, confirm(sent))
    assert await redeemed(client) == [-600]


async def test_the_cap_is_never_more_than_the_balance(tg: Harness) -> None:
    salon, client = await setting_up(tg, 100)
    await record(salon, client, NOON.replace(hour=9), 2000)
    card = said(await tg.say(OLGA, f"/redeem {client.code}"))
    assert "Бонусами можно оплатить до 100." in card


async def test_without_a_record_staff_say_the_bill_first(tg: Harness) -> None:
    salon, client = await setting_up(tg, 1000)
    # A record cancelled today is no bill.
    await record(salon, client, NOON.replace(hour=15), 2000, BookingStatus.CANCELLED)
    asked = said(await tg.say(OLGA, f"/redeem {client.code} 300"))
    assert "На сегодня записи нет. Какая сумма счёта, в рублях?" in asked
    assert "до 30\u00a0% счёта" in asked
    assert "не больше" not in asked and await redeemed(client) == []
    assert "сумму счёта в рублях" in said(await tg.say(OLGA, "дорого"))
    refused = said(await tg.say(OLGA, "500 ₽"))
    assert "не больше 150 из 500\u00a0₽" in refused
    sent = await tg.say(OLGA, "150")
    assert "Списать 150 бонусов у Екатерины" in said(sent)
    await tg.press(OLGA, confirm(sent))
    assert await redeemed(client) == [-150]


async def test_the_bill_asked_then_the_amount(tg: Harness) -> None:
    _salon, client = await setting_up(tg, 1000)
    await tg.say(OLGA, "💳 Списать бонусы")
    assert "Какая сумма счёта" in said(await tg.say(OLGA, client.code))
    shown = said(await tg.say(OLGA, "2 500"))
    assert "Бонусами можно оплатить до 750 из этого счёта. Сколько бонусов списать?" in shown
    sent = await tg.say(OLGA, "751")
    assert "не больше 750" in said(sent)
    sent = await tg.say(OLGA, "1")
    assert "Списать 1 бонус у Екатерины" in said(sent)
    await tg.press(OLGA, confirm(sent))
    assert (await Client.get(id=client.id)).balance == 999


async def test_a_salon_that_takes_no_bonuses_refuses_a_redeem(tg: Harness) -> None:
    _salon, client = await setting_up(tg, 1000, percent=0)
    assert "не принимает бонусы" in said(await tg.say(OLGA, f"/redeem {client.code} 100"))
    assert await redeemed(client) == []
    assert (await Client.get(id=client.id)).balance == 1000


async def test_whatsapp_staff_are_asked_the_bill_the_same_way(wa: Chat) -> None:
    salon = await make_salon(max_redeem_percent=30)
    await Company.filter(id=salon.id).update(whatsapp_session=SESSION)
    await Staff.create(company=salon, phone="+" + STAFF_CHAT.removesuffix("@c.us"), name="Ольга")
    client = await client_with_balance(salon, "+79991234567", 1000, name="Екатерина")
    assert "Какая сумма счёта" in await wa.says(f"списать {client.code} 500")
    assert "не больше 300 из 1\u00a0000\u00a0₽" in await wa.says("1000")
    asked = await wa.says("300")
    assert "Списать 300 бонусов у Екатерины" in asked and "Ответьте «да»" in asked
    assert "Новый баланс: 700" in await wa.says("да")
    assert await redeemed(client) == [-300]
