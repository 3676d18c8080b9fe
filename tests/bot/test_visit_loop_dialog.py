"""The visit loop from the booking to the client's answer, in Telegram: a record applied as a
webhook applies it, the reminder planned and sent by the real loop dispatcher with the dialog's
text, pressed through the real aiogram dispatcher, and the record confirmed in the YClients
emulator; the client's «стоп» keeps the reminder from going out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiogram.methods import SendMessage

from bot.dialog import Dialog, visit_texts
from bot.notifier import RoutingNotifier
from bot.outbound import Outbound
from bot.telegram.delivery import TelegramChannel
from bot.telegram.dispatcher import build_dispatcher
from bot.visits import Dispatcher, Kinds, texts
from core.bookings import apply_records
from core.models import Client, Company, ScheduledMessage, ScheduledStatus, StaffRole
from core.notifications import LoggingNotifier
from core.visits import kinds
from tests.bot.conftest import Harness, buttons, join, make_salon, make_staff, said
from tests.bot.loop_support import prepare_salon, yclients_for
from tests.fakes.clock import FakeClock
from tests.fakes.telegram import Person, TelegramTestChannel, recording_bot
from tests.fakes.yclients import YClientsEmulator
from tests.visit_support import NOW, VISIT, record

ANNA = Person(7501, "Анна")
OLGA = Person(7502, "Ольга")
# Thursday 18:00 in Moscow: the day-before reminder's time; Friday 09:00: 3 hours before.
DAY_BEFORE = datetime(2026, 11, 19, 15, 0, tzinfo=UTC)
SILENT_ALERT = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


@dataclass
class Loop:
    tg: Harness
    yc: YClientsEmulator
    clock: FakeClock
    dispatcher: Dispatcher
    salon: Company
    anna: Client

    async def at(self, moment: datetime) -> list[SendMessage]:
        """Move the clock to `moment` and let the loop send what is due; what it sent."""
        self.clock.moment = moment
        start = len(self.tg.session.requests)
        while await self.dispatcher.round():
            pass
        return [m for m in self.tg.session.requests[start:] if isinstance(m, SendMessage)]


@pytest.fixture
async def loop(orm: str) -> AsyncIterator[Loop]:
    async with YClientsEmulator() as yc:
        clock = FakeClock(NOW)
        api = yclients_for(yc)
        bot, session = recording_bot()
        outbound = Outbound({"telegram": TelegramTestChannel(bot)})
        notifier = RoutingNotifier(
            Outbound({"telegram": TelegramChannel(bot)}), fallback=LoggingNotifier()
        )
        dialog = Dialog(
            notifier,
            clock=lambda: clock.moment.timestamp(),
            outbound=outbound,
            yclients=api,
        )
        registry = Kinds()
        texts.register(registry)
        visit_texts.register(registry)
        dispatcher = Dispatcher(outbound, registry, clock=clock.clock())
        tg = Harness(build_dispatcher(dialog), bot, session, dialog)
        salon = await prepare_salon(await make_salon(), yc)
        await make_staff(salon, OLGA, StaffRole.ADMIN)
        anna = await join(tg, ANNA, salon, "+79991234567")
        yc.add_record(salon.yclients_id, id=1, datetime=VISIT)
        await apply_records(salon, [record()], now=NOW)
        yield Loop(tg, yc, clock, dispatcher, salon, anna)
        await bot.session.close()
        await api.aclose()


def to(person: Person, sent: list[SendMessage]) -> list[SendMessage]:
    return [m for m in sent if m.chat_id == person.id]


async def test_the_reminder_goes_out_and_ill_come_confirms_once(loop: Loop) -> None:
    (notice,) = to(ANNA, await loop.at(NOW))
    assert "Салон Ромашка: вы записаны." in notice.text

    (reminder,) = to(ANNA, await loop.at(DAY_BEFORE))
    assert "Анна, напоминаем о вашей записи — Салон Ромашка." in reminder.text
    assert "Завтра, пятница, 20 ноября, 12:00" in reminder.text
    come = next(data for text, data, _url in buttons([reminder]) if text == "✅ Приду")
    assert come is not None

    first = await loop.tg.press(ANNA, come)
    second = await loop.tg.press(ANNA, come)

    assert "Отметили, что вы придёте" in said(first) and "уже подтвердили" in said(second)
    assert [m for m, _body in loop.yc.writes_to(1)] == ["PUT"]
    assert loop.yc.records[loop.salon.yclients_id][1]["attendance"] == 2
    # Answered: no silent-client alert for the admins.
    assert not to(OLGA, await loop.at(SILENT_ALERT))


async def test_an_unanswered_reminder_alerts_the_admins(loop: Loop) -> None:
    await loop.at(DAY_BEFORE)
    (alert,) = to(OLGA, await loop.at(SILENT_ALERT))
    assert "+79991234567" in alert.text


async def test_stop_keeps_the_reminder_from_going_out(loop: Loop) -> None:
    await loop.at(NOW)
    asked = await loop.tg.say(ANNA, "стоп")
    only = next(data for text, data, _url in buttons(asked) if "Только напоминания" in text)
    assert only is not None
    await loop.tg.press(ANNA, only)

    assert not to(ANNA, await loop.at(DAY_BEFORE))
    row = await ScheduledMessage.get(kind=kinds.DAY_BEFORE)
    assert row.status is ScheduledStatus.DROPPED
    # Booking notices still come: the record moved.
    moved = record(at="2026-11-21T15:00:00+03:00", last_change_date="2026-11-19T18:30:00+0300")
    await apply_records(loop.salon, [moved], now=DAY_BEFORE + timedelta(minutes=30))
    (notice,) = to(ANNA, await loop.at(DAY_BEFORE + timedelta(minutes=30)))
    assert "21 ноября" in notice.text


async def test_cancel_under_the_booking_notice_cancels_once(loop: Loop) -> None:
    (notice,) = to(ANNA, await loop.at(NOW))
    cancel = next(data for text, data, _url in buttons([notice]) if text == "Отменить запись")
    assert cancel is not None
    asked = await loop.tg.press(ANNA, cancel)
    sure = next(data for text, data, _url in buttons(asked) if text == "Да, отменить")
    assert sure is not None

    assert "Запись отменена" in said(await loop.tg.press(ANNA, sure))
    await loop.tg.press(ANNA, sure)

    assert [m for m, _body in loop.yc.writes_to(1)] == ["DELETE"]
    sent = [m for m in loop.tg.session.requests if isinstance(m, SendMessage)]
    (alert,) = to(OLGA, sent)
    assert "отменил(а) запись через бота" in alert.text
    # YClients' webhook echoes the deletion: no "booking cancelled" notice follows the answer.
    gone = {"id": 1, "deleted": True, "last_change_date": "2026-11-16T12:10:00+0300"}
    await apply_records(loop.salon, [gone], now=NOW + timedelta(minutes=10))
    assert not to(ANNA, await loop.at(NOW + timedelta(minutes=10)))
    # And no reminder of the cancelled visit.
    assert not to(ANNA, await loop.at(DAY_BEFORE))
