"""The client's side of the visit loop in WhatsApp: the channel (bot.whatsapp.channel) with the
real gateway client against the WAHA emulator. Words answer the latest open reminder («да»,
«отмена» then «да», «перенести»), numbered choices answer the dialog's questions, «стоп»
stops."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.dialog import Dialog
from bot.outbound import Outbound, Recipient
from bot.whatsapp.channel import WhatsAppBot
from bot.whatsapp.delivery import WhatsAppChannel
from bot.whatsapp.outbox import Manners, Outbox
from core.clients import create_client
from core.models import Client, Company, ScheduledMessage, Staff, StaffRole
from core.notifications import LoggingNotifier
from core.whatsapp import WahaGateway
from tests.bot.conftest import make_salon
from tests.bot.loop_support import (
    Inbox,
    prepare_salon,
    record_of,
    the_message,
    upcoming_visit,
    yclients_for,
)
from tests.fakes.waha import WahaEmulator
from tests.fakes.yclients import YClientsEmulator
from tests.web.onboarding_support import until

SESSION = "salon-555"
ANNA = "79991234567@c.us"
_ids = itertools.count(1)


@dataclass
class WhatsApp:
    channel: WhatsAppBot
    waha: WahaEmulator
    yc: YClientsEmulator
    admins: Inbox
    salon: Company
    anna: Client

    async def says(self, text: str, sender: str = ANNA) -> str:
        """A message from `sender` handled as the inbox hands it over; what was sent back."""
        event: dict[str, Any] = {
            "event": "message",
            "session": SESSION,
            "payload": {
                "id": f"false_{sender}_3EB0{next(_ids):016X}",
                "from": sender,
                "fromMe": False,
                "body": text,
                "hasMedia": False,
                "_data": {"pushName": "Анна"},
            },
        }
        start = len(self.waha.sent)
        await self.channel.handle(event, self.salon.id)
        await self.channel.outbox.idle()
        return "\n".join(str(m["text"]) for m in self.waha.sent[start:] if m["chatId"] == sender)


@pytest.fixture
async def wa(orm: str) -> AsyncIterator[WhatsApp]:
    async with YClientsEmulator() as yc, WahaEmulator(start_delay=0.0) as waha:
        gateway = WahaGateway(waha.url, waha.api_key, "h" * 32, retries=0)
        await gateway.ensure_session(SESSION, "http://127.0.0.1:9/webhook/whatsapp", {})
        await until(lambda: waha.sessions[SESSION].status == "SCAN_QR_CODE")
        await waha.scan(SESSION)
        api = yclients_for(yc)
        admins = Inbox()
        dialog = Dialog(LoggingNotifier(), outbound=Outbound({"telegram": admins}), yclients=api)
        outbox = Outbox(gateway, Manners(pause=0.0, rate=0))
        salon = await prepare_salon(await make_salon(), yc, whatsapp_session=SESSION)
        await _admin(salon)
        anna = (await create_client(salon, phone="+79991234567", name="Анна", welcome=False)).client
        wa = WhatsApp(WhatsAppBot(gateway, outbox, dialog), waha, yc, admins, salon, anna)
        await wa.says("привет")  # the chat is tied to Anna's card by the number WhatsApp shows
        yield wa
        await outbox.close()
        await gateway.aclose()
        await api.aclose()


async def _admin(salon: Company) -> None:
    await Staff.create(company=salon, telegram_user_id=7402, name="Ольга", role=StaffRole.ADMIN)


async def test_da_confirms_the_latest_open_reminder_once(wa: WhatsApp) -> None:
    row = await upcoming_visit(wa.salon, wa.anna, wa.yc)

    first = await wa.says("Да!")
    second = await wa.says("буду")

    assert "Отметили, что вы придёте" in first
    assert "уже подтвердили" in second
    record = await record_of(wa.yc, wa.salon, row)
    assert len(wa.yc.writes_to(record["id"], "PUT")) == 1 and record["attendance"] == 2
    assert (await ScheduledMessage.get(id=row.id)).answer == "confirmed"


async def test_otmena_asks_once_more_and_da_then_cancels_not_confirms(wa: WhatsApp) -> None:
    row = await upcoming_visit(wa.salon, wa.anna, wa.yc)

    asked = await wa.says("отмена")
    assert "Отменить запись?" in asked and "1 — Да, отменить" in asked
    done = await wa.says("да")

    assert "Запись отменена" in done
    record = await record_of(wa.yc, wa.salon, row)
    assert [m for m, _body in wa.yc.writes_to(record["id"])] == ["DELETE"]
    (alert,) = wa.admins.to_staff()
    assert "отменил(а) запись через бота" in alert


async def test_a_numbered_choice_answers_the_second_question(wa: WhatsApp) -> None:
    row = await upcoming_visit(wa.salon, wa.anna, wa.yc)
    await wa.says("отмена")
    assert "остаётся в силе" in await wa.says("2")
    record = await record_of(wa.yc, wa.salon, row)
    assert not wa.yc.writes_to(record["id"])


async def test_perenesti_writes_the_booking_link_out(wa: WhatsApp) -> None:
    await upcoming_visit(wa.salon, wa.anna, wa.yc)
    sent = await wa.says("перенести")
    assert "https://n100555.yclients.com/company/555/personal/menu?o=m77s11" in sent
    (alert,) = wa.admins.to_staff()
    assert "хочет перенести запись" in alert


async def test_da_without_a_reminder_is_not_taken_for_one(wa: WhatsApp) -> None:
    sent = await wa.says("да")
    assert "Отметили" not in sent
    assert not wa.yc.writes


async def test_stop_then_a_number_turns_reminders_off(wa: WhatsApp) -> None:
    asked = await wa.says("стоп")
    assert "1 — 🔕 Только напоминания" in asked and "2 — 🔕 Всё" in asked
    await wa.says("1")
    anna = await Client.get(id=wa.anna.id)
    assert anna.reminders_off and not anna.messages_off
    assert "снова включены" in await wa.says("старт")
    assert not (await Client.get(id=wa.anna.id)).reminders_off


async def test_a_number_answers_the_reminder_the_loop_sent(wa: WhatsApp) -> None:
    row = await upcoming_visit(wa.salon, wa.anna, wa.yc)
    anna = await Client.get(id=wa.anna.id)
    # The loop sends the reminder over the salon's number (bot.whatsapp.delivery).
    delivery = WhatsAppChannel(wa.channel.outbox)
    start = len(wa.waha.sent)
    await delivery.send(Recipient.of_client(anna, wa.salon), wa.salon, [await the_message(row)])
    (reminder,) = [m["text"] for m in wa.waha.sent[start:]]
    assert "1 — ✅ Приду" in reminder and "3 — ❌ Отменить запись" in reminder

    assert "Отметили, что вы придёте" in await wa.says("1")
    record = await record_of(wa.yc, wa.salon, row)
    assert [m for m, _body in wa.yc.writes_to(record["id"])] == ["PUT"]
