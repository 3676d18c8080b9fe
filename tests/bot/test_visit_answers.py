"""The client's side of the visit loop in Telegram, through the real dispatcher: answering a
reminder (I'll come, Cancel, Move) reaches the YClients emulator once however often it is
pressed; a failure tells the client and the admins and leaves the reminder answerable; the
rating after a visit; the client's say."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from bot.dialog import Dialog
from bot.notifier import RoutingNotifier
from bot.outbound import Outbound
from bot.telegram.delivery import TelegramChannel
from bot.telegram.dispatcher import build_dispatcher
from core.models import (
    Client,
    Company,
    ScheduledMessage,
    ScheduledStatus,
    StaffRole,
    VisitReview,
)
from core.notifications import LoggingNotifier
from core.visits import kinds
from tests.bot.conftest import Harness, buttons, join, make_salon, make_staff, said
from tests.bot.loop_support import (
    MASTER_ID,
    SERVICE_ID,
    Inbox,
    button,
    prepare_salon,
    record_of,
    the_message,
    upcoming_visit,
    yclients_for,
)
from tests.fakes.telegram import Person, recording_bot
from tests.fakes.yclients import YClientsEmulator

ANNA = Person(7301, "Анна")
OLGA = Person(7302, "Ольга")  # the salon's admin
BORIS = Person(7303, "Борис")


@dataclass
class Loop:
    tg: Harness
    yc: YClientsEmulator
    admins: Inbox
    salon: Company
    anna: Client


@pytest.fixture
async def loop(orm: str) -> AsyncIterator[Loop]:
    async with YClientsEmulator() as yc:
        api = yclients_for(yc)
        admins = Inbox()
        bot, session = recording_bot()
        notifier = RoutingNotifier(
            Outbound({"telegram": TelegramChannel(bot)}), fallback=LoggingNotifier()
        )
        dialog = Dialog(notifier, outbound=Outbound({"telegram": admins}), yclients=api)
        tg = Harness(build_dispatcher(dialog), bot, session, dialog)
        salon = await prepare_salon(await make_salon(), yc)
        await make_staff(salon, OLGA, StaffRole.ADMIN)
        anna = await join(tg, ANNA, salon, "+79991234567")
        yield Loop(tg, yc, admins, salon, anna)
        await bot.session.close()
        await api.aclose()


def writes(loop: Loop, record: dict[str, object], method: str) -> list[object]:
    return [body for _m, body in loop.yc.writes_to(int(str(record["id"])), method)]


async def test_ill_come_pressed_twice_confirms_the_record_once(loop: Loop) -> None:
    row = await upcoming_visit(loop.salon, loop.anna, loop.yc)
    reminder = await the_message(row)
    assert "Анна, напоминаем о вашей записи — Салон Ромашка." in reminder.text
    assert "Завтра" in reminder.text or "Сегодня" in reminder.text
    assert "Стрижка, мастер Мария" in reminder.text
    come = button(reminder, "Приду")

    first = await loop.tg.press(ANNA, come)
    second = await loop.tg.press(ANNA, come)

    assert "Отметили, что вы придёте" in said(first)
    assert "уже подтвердили" in said(second)
    record = await record_of(loop.yc, loop.salon, row)
    (body,) = writes(loop, record, "PUT")
    # The documented body: the whole record as read, the attendance changed.
    assert isinstance(body, dict) and body["attendance"] == 2 and body["staff_id"] == MASTER_ID
    assert record["attendance"] == 2
    assert (await ScheduledMessage.get(id=row.id)).answer == "confirmed"
    assert not loop.admins.sent


async def test_the_visits_other_reminder_does_not_confirm_again(loop: Loop) -> None:
    first = await upcoming_visit(loop.salon, loop.anna, loop.yc)
    await loop.tg.press(ANNA, button(await the_message(first), "Приду"))
    second = await ScheduledMessage.create(
        company_id=loop.salon.id,
        booking_id=first.booking_id,
        client_id=loop.anna.id,
        kind=kinds.HOURS_BEFORE,
        key=f"hours_before:{first.booking_id}:1",
        due_at=first.due_at,
        status=ScheduledStatus.SENT,
        sent_at=first.sent_at,
    )
    sent = await loop.tg.press(ANNA, button(await the_message(second), "Приду"))
    assert "уже подтвердили" in said(sent)
    record = await record_of(loop.yc, loop.salon, first)
    assert len(writes(loop, record, "PUT")) == 1


async def test_cancel_asks_once_more_then_deletes_once_and_tells_the_admins(loop: Loop) -> None:
    row = await upcoming_visit(loop.salon, loop.anna, loop.yc)
    asked = await loop.tg.press(ANNA, button(await the_message(row), "Отменить"))
    assert "Отменить запись?" in said(asked)
    record = await record_of(loop.yc, loop.salon, row)
    assert not loop.yc.writes_to(record["id"])
    sure = next(data for text, data, _url in buttons(asked) if text == "Да, отменить")
    assert sure is not None

    done = await loop.tg.press(ANNA, sure)
    again = await loop.tg.press(ANNA, sure)

    assert "Запись отменена" in said(done)
    assert "Эта запись отменена" in said(again)
    assert len(writes(loop, record, "DELETE")) == 1 and record["deleted"] is True
    (alert,) = loop.admins.to_staff()
    assert "Анна (+79991234567) отменил(а) запись через бота" in alert
    assert "Стрижка, мастер Мария" in alert
    # The webhook that echoes the deletion will find its notice there already, never sent.
    echo = await ScheduledMessage.get(booking_id=row.booking_id, kind=kinds.NOTICE_CANCELLED)
    assert echo.status is ScheduledStatus.DROPPED


async def test_no_to_the_second_question_keeps_the_visit(loop: Loop) -> None:
    row = await upcoming_visit(loop.salon, loop.anna, loop.yc)
    asked = await loop.tg.press(ANNA, button(await the_message(row), "Отменить"))
    keep = next(data for text, data, _url in buttons(asked) if text == "Нет, оставить")
    assert keep is not None
    assert "остаётся в силе" in said(await loop.tg.press(ANNA, keep))
    record = await record_of(loop.yc, loop.salon, row)
    assert not loop.yc.writes_to(record["id"]) and not loop.admins.sent


async def test_a_token_that_may_not_delete_cancels_with_attendance_minus_one(loop: Loop) -> None:
    loop.yc.forbid(loop.salon.yclients_id, "DELETE")
    row = await upcoming_visit(loop.salon, loop.anna, loop.yc)
    asked = await loop.tg.press(ANNA, button(await the_message(row), "Отменить"))
    sure = next(data for text, data, _url in buttons(asked) if text == "Да, отменить")
    assert sure is not None

    assert "Запись отменена" in said(await loop.tg.press(ANNA, sure))

    record = await record_of(loop.yc, loop.salon, row)
    assert loop.yc.calls_to(f"/api/v1/record/{loop.salon.yclients_id}/{record['id']}") >= 2
    assert not writes(loop, record, "DELETE")  # refused with 403, so nothing was written
    (body,) = writes(loop, record, "PUT")
    assert isinstance(body, dict) and body["attendance"] == -1
    assert record["attendance"] == -1 and not record["deleted"]
    (alert,) = loop.admins.to_staff()
    assert "(−1)" in alert


async def test_yclients_down_tells_both_and_leaves_the_reminder_answerable(loop: Loop) -> None:
    row = await upcoming_visit(loop.salon, loop.anna, loop.yc)
    come = button(await the_message(row), "Приду")
    loop.yc.fail_next(20, 503, path_prefix="/api/v1/record/")

    sent = await loop.tg.press(ANNA, come)

    assert "система записи салона сейчас не ответила" in said(sent)
    (alert,) = loop.admins.to_staff()
    assert "YClients не принял подтверждение" in alert and "+79991234567" in alert
    assert (await ScheduledMessage.get(id=row.id)).answer is None
    loop.yc.reset_faults()

    assert "Отметили, что вы придёте" in said(await loop.tg.press(ANNA, come))
    assert (await record_of(loop.yc, loop.salon, row))["attendance"] == 2


async def test_move_gives_the_link_for_the_service_and_master_and_tells_admins_once(
    loop: Loop,
) -> None:
    row = await upcoming_visit(loop.salon, loop.anna, loop.yc)
    move = button(await the_message(row), "Перенести")

    first = await loop.tg.press(ANNA, move)
    await loop.tg.press(ANNA, move)

    links = [url for _text, _data, url in buttons(first) if url]
    assert links == [
        f"https://n100555.yclients.com/company/555/personal/menu?o=m{MASTER_ID}s{SERVICE_ID}"
    ]
    (alert,) = loop.admins.to_staff()
    assert "хочет перенести запись" in alert and "+79991234567" in alert
    record = await record_of(loop.yc, loop.salon, row)
    assert not loop.yc.writes_to(record["id"])


async def test_another_clients_reminder_cannot_be_answered(loop: Loop) -> None:
    row = await upcoming_visit(loop.salon, loop.anna, loop.yc)
    come = button(await the_message(row), "Приду")
    await join(loop.tg, BORIS, loop.salon, "+79990001122")
    sent = await loop.tg.press(BORIS, come)
    assert "больше не действует" in said(sent)
    record = await record_of(loop.yc, loop.salon, row)
    assert not loop.yc.writes_to(record["id"])


async def test_rating_five_thanks_with_the_review_link(loop: Loop) -> None:
    await Company.filter(id=loop.salon.id).update(review_url="https://yandex.ru/maps/org/1")
    row = await upcoming_visit(
        loop.salon, loop.anna, loop.yc, ahead=-timedelta(hours=3), kind=kinds.REVIEW, completed=True
    )
    question = await the_message(row)
    assert "Как всё прошло?" in question.text
    assert [b.text for b in question.buttons[0]] == ["1 ⭐", "2 ⭐", "3 ⭐", "4 ⭐", "5 ⭐"]

    sent = await loop.tg.press(ANNA, button(question, "5"))
    again = await loop.tg.press(ANNA, button(question, "1"))

    assert "Очень рады" in said(sent)
    assert ("✍️ Оставить отзыв", None, "https://yandex.ru/maps/org/1") in buttons(sent)
    assert "оценка этого визита у нас уже есть" in said(again)
    review = await VisitReview.get(booking_id=row.booking_id)
    assert review.rating == 5 and review.client_id == loop.anna.id
    assert not loop.admins.sent


async def test_rating_five_without_a_review_link_just_thanks(loop: Loop) -> None:
    row = await upcoming_visit(
        loop.salon, loop.anna, loop.yc, ahead=-timedelta(hours=3), kind=kinds.REVIEW, completed=True
    )
    sent = await loop.tg.press(ANNA, button(await the_message(row), "4"))
    assert "Очень рады" in said(sent) and not buttons(sent)


async def test_rating_two_sends_the_clients_words_to_the_admins(loop: Loop) -> None:
    row = await upcoming_visit(
        loop.salon, loop.anna, loop.yc, ahead=-timedelta(hours=3), kind=kinds.REVIEW, completed=True
    )
    sent = await loop.tg.press(ANNA, button(await the_message(row), "2"))
    assert "Что пошло не так?" in said(sent)

    thanks = await loop.tg.say(ANNA, "Мастер опоздал на полчаса")

    assert "Спасибо, что рассказали" in said(thanks)
    (alert,) = loop.admins.to_staff()
    assert "⭐ 2/5 от клиента Анна (+79991234567)" in alert
    assert "Стрижка, мастер Мария" in alert and "«Мастер опоздал на полчаса»" in alert
    review = await VisitReview.get(booking_id=row.booking_id)
    assert review.rating == 2 and review.comment == "Мастер опоздал на полчаса"
    # The next message is an ordinary one again.
    assert "Ваш баланс" in said(await loop.tg.say(ANNA, "🎁 Бонусы"))


async def test_stop_offers_both_choices_and_start_turns_them_back_on(loop: Loop) -> None:
    asked = await loop.tg.say(ANNA, "стоп")
    choices = {text: data for text, data, _url in buttons(asked)}
    assert set(choices) == {"🔕 Только напоминания", "🔕 Всё"}

    await loop.tg.press(ANNA, str(choices["🔕 Только напоминания"]))
    anna = await Client.get(id=loop.anna.id)
    assert anna.reminders_off and not anna.messages_off

    await loop.tg.say(ANNA, "stop")
    everything = await loop.tg.press(ANNA, str(choices["🔕 Всё"]))
    assert "не будет писать вам сам" in said(everything)
    anna = await Client.get(id=loop.anna.id)
    assert anna.reminders_off and anna.messages_off

    assert "снова включены" in said(await loop.tg.say(ANNA, "старт"))
    anna = await Client.get(id=loop.anna.id)
    assert not anna.reminders_off and not anna.messages_off


async def test_the_menu_has_the_reminders_entry(loop: Loop) -> None:
    sent = await loop.tg.say(ANNA, "🔔 Напоминания")
    assert "Что больше не присылать?" in said(sent)
