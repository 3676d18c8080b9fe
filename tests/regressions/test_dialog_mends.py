"""Issue 12, dialog mends, in Telegram (the real dispatcher) and WhatsApp (the channel):

- a wrong code said "try again" but ended the redeem, so the retry got "Не понял": the redeem
  stays open for the next try, and the lockout still counts and ends it;
- a client the YClients sync created was greeted "С возвращением!" on first contact: only
  someone who has written before is welcomed back;
- the bonus history showed the entry's created_at (the sync date) and not which visit: an
  entry of a visit shows the visit's own day in the salon's timezone and its services.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.dialog import Dialog
from bot.whatsapp.channel import WhatsAppBot
from bot.whatsapp.outbox import Manners, Outbox
from core import codes, ledger
from core.models import (
    Booking,
    BookingStatus,
    Client,
    Company,
    LedgerEntry,
    LedgerKind,
    Staff,
)
from core.notifications import LoggingNotifier
from tests.bot import conftest as bot_fixtures
from tests.bot.conftest import Harness, client_with_balance, join, make_staff, said
from tests.bot.test_whatsapp import RecordingGateway
from tests.fakes.telegram import Person

tg = bot_fixtures.tg
salon = bot_fixtures.salon

OLGA = Person(7101, "Ольга")
ANNA = Person(7102, "Анна")
SESSION = "salon-555"
STAFF_CHAT = "79995550000@c.us"
ANNA_CHAT = "79991234567@c.us"
NOT_FOUND = "Клиент не найден. Проверьте код и попробуйте ещё раз."
_ids = itertools.count(1)


class Chat:
    """The WhatsApp channel with a recording gateway: a message in, the text sent back."""

    def __init__(self, channel: WhatsAppBot, gateway: RecordingGateway) -> None:
        self.channel = channel
        self.gateway = gateway

    async def says(self, sender: str, text: str) -> str:
        event: dict[str, Any] = {
            "event": "message",
            "session": SESSION,
            "payload": {
                "id": f"false_{sender}_3EB0{next(_ids):016X}",
                "from": sender,
                "fromMe": False,
                "body": text,
                "hasMedia": False,
                "_data": {"pushName": "Гость"},
            },
        }
        start = len(self.gateway.calls)
        await self.channel.handle(event)
        await self.channel.outbox.idle()
        return "\n".join(str(c[2]) for c in self.gateway.calls[start:] if c[0] == "text")


@pytest.fixture
async def wa(orm: str) -> AsyncIterator[Chat]:
    gateway = RecordingGateway()
    outbox = Outbox(gateway, Manners(pause=0.0, rate=0))  # type: ignore[arg-type]
    channel = WhatsAppBot(gateway, outbox, Dialog(LoggingNotifier()))  # type: ignore[arg-type]
    yield Chat(channel, gateway)
    await outbox.close()


async def wa_salon() -> Company:
    company = await bot_fixtures.make_salon()
    await Company.filter(id=company.id).update(
        whatsapp_session=SESSION, timezone="Asia/Yekaterinburg"
    )
    return await Company.get(id=company.id)


def wrong_code(right: str) -> str:
    """A well-formed code (its check symbol right) that is nobody's."""
    while True:
        code = codes.generate()
        if code != right:
            return codes.display(code)


def typo(right: str) -> str:
    """The code with one symbol wrong: its check symbol refuses it before any lookup."""
    return right[:3] + ("0" if right[3] != "0" else "1") + right[4:]


# --- a wrong code keeps the redeem open -------------------------------------------------------


async def test_telegram_a_wrong_code_leaves_the_redeem_open_for_the_next_try(
    tg: Harness, salon: Company
) -> None:
    await make_staff(salon, OLGA)
    client = await client_with_balance(salon, "+79991234567", 800)
    assert "Пришлите код клиента" in said(await tg.say(OLGA, "/redeem"))
    assert said(await tg.say(OLGA, wrong_code(client.code))) == NOT_FOUND
    # The retry is taken as the code, a mistyped one too (it used to be "Не понял").
    assert said(await tg.say(OLGA, typo(client.code))) == NOT_FOUND
    sent = said(await tg.say(OLGA, codes.display(client.code)))
    assert "Сколько бонусов списать?" in sent and "800" in sent
    assert "Списать 500 бонусов у Марии" in said(await tg.say(OLGA, "500"))


async def test_telegram_a_wrong_code_in_the_command_also_leaves_it_open(
    tg: Harness, salon: Company
) -> None:
    await make_staff(salon, OLGA)
    client = await client_with_balance(salon, "+79991234567", 800)
    assert said(await tg.say(OLGA, f"/redeem {wrong_code(client.code)} 100")) == NOT_FOUND
    assert said(await tg.say(OLGA, typo(client.code))) == NOT_FOUND
    assert "Сколько бонусов списать?" in said(await tg.say(OLGA, client.code))


async def test_telegram_the_fifth_wrong_code_locks_and_ends_the_redeem(
    tg: Harness, salon: Company
) -> None:
    await make_staff(salon, OLGA)
    client = await client_with_balance(salon, "+79991234567", 800)
    await tg.say(OLGA, "/redeem")
    for _ in range(4):
        assert said(await tg.say(OLGA, wrong_code(client.code))) == NOT_FOUND
    locked = said(await tg.say(OLGA, wrong_code(client.code)))
    assert locked.startswith("Слишком много неверных кодов. Ввод кодов заблокирован до ")
    staff = await Staff.get(telegram_user_id=OLGA.id)
    assert staff.locked_until is not None
    # The flow is over: the right code now is not a step of it (and not looked up either).
    assert "заблокирован" in said(await tg.say(OLGA, client.code))
    assert not await LedgerEntry.filter(kind=LedgerKind.REDEMPTION).exists()


async def test_whatsapp_a_wrong_code_leaves_the_redeem_open_for_the_next_try(wa: Chat) -> None:
    company = await wa_salon()
    await Staff.create(company=company, phone="+79995550000", name="Ольга")
    client = await client_with_balance(company, "+79991234567", 800)
    await wa.says(STAFF_CHAT, "привет")
    wrong = await wa.says(STAFF_CHAT, f"списать {wrong_code(client.code)} 100")
    assert wrong == f"{NOT_FOUND}\n0 — ✖️ Отмена"
    sent = await wa.says(STAFF_CHAT, codes.display(client.code))
    assert "Сколько бонусов списать?" in sent and "800" in sent
    assert "Ответьте «да»" in await wa.says(STAFF_CHAT, "500")
    assert "Новый баланс: 300" in await wa.says(STAFF_CHAT, "да")
    # Within the open flow a whole command is taken as one again.
    await wa.says(STAFF_CHAT, f"списать {wrong_code(client.code)} 100")
    assert "Ответьте «да»" in await wa.says(STAFF_CHAT, f"списать {client.code} 100")


async def test_whatsapp_the_fifth_wrong_code_locks_and_ends_the_redeem(wa: Chat) -> None:
    company = await wa_salon()
    await Staff.create(company=company, phone="+79995550000", name="Ольга")
    client = await client_with_balance(company, "+79991234567", 800)
    await wa.says(STAFF_CHAT, "списать")
    for _ in range(4):
        assert NOT_FOUND in await wa.says(STAFF_CHAT, wrong_code(client.code))
    locked = await wa.says(STAFF_CHAT, wrong_code(client.code))
    assert "Слишком много неверных кодов" in locked and "0 — ☰ Меню" in locked
    assert "заблокирован" in await wa.says(STAFF_CHAT, codes.display(client.code))


# --- "welcome back" only to someone who has written before -----------------------------------


async def test_whatsapp_a_client_the_sync_created_is_welcomed_not_welcomed_back(
    wa: Chat,
) -> None:
    company = await wa_salon()
    await client_with_balance(company, "+79991234567", 150)  # made by the YClients sync
    first = await wa.says(ANNA_CHAT, "Здравствуйте!")
    assert "С возвращением" not in first
    assert "Добро пожаловать! Это Салон Ромашка: здесь можно записаться и копить бонусы." in first
    assert "Ваш баланс: 150 бонусов." in first
    # Now they have written: a greeting later is a welcome back.
    assert "С возвращением! Это Салон Ромашка." in await wa.says(ANNA_CHAT, "привет")


async def test_whatsapp_a_client_who_wrote_in_telegram_is_welcomed_back(wa: Chat) -> None:
    company = await wa_salon()
    client = await client_with_balance(company, "+79991234567", 150)
    await Client.filter(id=client.id).update(telegram_user_id=ANNA.id)
    assert "С возвращением! Это Салон Ромашка." in await wa.says(ANNA_CHAT, "привет")


async def test_telegram_a_client_the_sync_created_is_greeted_then_welcomed_back(
    tg: Harness, salon: Company
) -> None:
    await client_with_balance(salon, "+79991234567", 150)
    first = said(await tg.say(ANNA, f"/start salon-{salon.yclients_id}"))
    assert "С возвращением" not in first and "Добро пожаловать" in first
    await tg.feed(ANNA.shares_contact("+79991234567"))
    assert "С возвращением! Это Салон Ромашка." in said(await tg.say(ANNA, "/start"))


# --- the history shows the visit's own day and its services ----------------------------------


async def visit_bonus(company: Company, client_id: int) -> None:
    """A visit's bonus (written today, as a sync would, long after the visit) and a manual
    correction."""
    booking = await Booking.create(
        company=company,
        client_id=client_id,
        yclients_record_id=77,
        # 20:30 UTC is 01:30 on 1 March in Yekaterinburg (UTC+5).
        visit_at=datetime(2026, 2, 28, 20, 30, tzinfo=UTC),
        services=[{"title": "Стрижка"}, {"title": "Укладка"}],
        cost=1500,
        status=BookingStatus.COMPLETED,
    )
    await ledger.accrue(client_id, 150, "booking:77:1", booking_id=booking.id)
    admin = await Staff.create(company=company, phone="+79995550009", name="Ира")
    await ledger.adjust(client_id, 20, "adjust:x", staff_id=admin.id, reason="подарок")


async def test_telegram_history_shows_the_visits_day_and_services(
    tg: Harness, salon: Company
) -> None:
    await Company.filter(id=salon.id).update(timezone="Asia/Yekaterinburg")
    client = await join(tg, ANNA, salon, "+79991234567")
    await visit_bonus(salon, client.id)
    text = said(await tg.say(ANNA, "🎁 Бонусы"))
    assert "01.03.2026  +150  за визит: Стрижка, Укладка" in text
    assert "+20  корректировка: подарок" in text


async def test_whatsapp_history_shows_the_visits_day_and_services(wa: Chat) -> None:
    company = await wa_salon()
    await wa.says(ANNA_CHAT, "привет")
    anna = await Client.get(company_id=company.id, whatsapp_chat_id=ANNA_CHAT)
    await visit_bonus(company, anna.id)
    text = await wa.says(ANNA_CHAT, "2")
    assert "01.03.2026  +150  за визит: Стрижка, Укладка" in text
