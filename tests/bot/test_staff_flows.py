"""Staff in Telegram, at dispatcher level: joining, redeem, lookup, adjust, bounded guessing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram.methods import EditMessageText, SendMessage, TelegramMethod

from bot.dialog import Dialog
from bot.notifier import RoutingNotifier
from bot.outbound import Outbound
from bot.telegram.delivery import TelegramChannel
from bot.telegram.dispatcher import build_dispatcher
from core import codes, ledger
from core import staff as staff_service
from core.models import Client, Company, LedgerEntry, LedgerKind, Staff, StaffInvite, StaffRole
from core.notifications import LoggingNotifier
from tests.bot.conftest import (
    Harness,
    buttons,
    client_with_balance,
    join,
    keyboard,
    make_salon,
    make_staff,
    said,
)
from tests.fakes.telegram import Person, recording_bot

OLGA = Person(8001, "Ольга")  # staff
IRA = Person(8002, "Ирина")  # another staff member
ANNA = Person(7001, "Анна")  # a client
NOT_FOUND = "Клиент не найден"


async def debits(client: Client) -> list[int]:
    return list(
        await LedgerEntry.filter(client_id=client.id, kind=LedgerKind.REDEMPTION).values_list(
            "amount", flat=True
        )
    )


def confirm_token(sent: list[TelegramMethod[Any]]) -> str:
    data = [d for _t, d, _u in buttons(sent) if d and d.startswith("rc:")]
    assert data, f"no confirm button in {said(sent)!r}"
    return data[0].removeprefix("rc:")


async def test_an_invite_link_makes_a_staff_member_once(tg: Harness, salon: Company) -> None:
    token, _invite = await staff_service.create_invite(salon, StaffRole.ADMIN)
    sent = await tg.say(OLGA, f"/start staff-{token}")
    assert "Салон Ромашка" in said(sent) and "администратор" in said(sent)
    staff = await Staff.get(company_id=salon.id, telegram_user_id=OLGA.id)
    assert staff.role is StaffRole.ADMIN and staff.active and staff.name == "Ольга"
    assert (await StaffInvite.get()).used_by_id == staff.id
    # Single use: the same link does nothing for someone else.
    sent = await tg.say(IRA, f"/start staff-{token}")
    assert "недействительно" in said(sent)
    assert not await Staff.exists(telegram_user_id=IRA.id)


async def test_an_expired_or_made_up_invite_is_refused(tg: Harness, salon: Company) -> None:
    token, _ = await staff_service.create_invite(salon, ttl=timedelta(seconds=-1))
    assert "недействительно" in said(await tg.say(OLGA, f"/start staff-{token}"))
    assert "недействительно" in said(await tg.say(OLGA, "/start staff-madeup"))
    assert not await Staff.exists()


async def test_redeem_step_by_step_debits_once_however_often_confirmed(
    tg: Harness, salon: Company
) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    await ledger.accrue(client.id, 500, "visit:1")
    await make_staff(salon, OLGA)
    sent = await tg.say(OLGA, "💳 Списать бонусы")
    assert "код клиента" in said(sent)
    sent = await tg.say(OLGA, codes.display(client.code).lower())
    assert "Анна" in said(sent) and "*** ***-45-67" in said(sent) and "500" in said(sent)
    sent = await tg.say(OLGA, "200")
    token = confirm_token(sent)
    assert "500 → 300" in said(sent)
    before = len(tg.session.requests)
    sent = await tg.press(OLGA, f"rc:{token}")
    edits = [m for m in sent if isinstance(m, EditMessageText)]
    assert edits and "Новый баланс: 300" in edits[0].text
    # The client is told, in their chat.
    to_client = [m for m in tg.session.sent(before) if isinstance(m, SendMessage)]
    assert any(m.chat_id == ANNA.id and "Списано бонусов: 200" in m.text for m in to_client)
    # A second tap, and a tap replayed later, change nothing.
    again = await tg.press(OLGA, f"rc:{token}")
    assert "Уже списано бонусов: 200" in said(again)
    assert await debits(client) == [-200]
    assert (await Client.get(id=client.id)).balance == 300


async def test_two_simultaneous_taps_debit_once(tg: Harness, salon: Company) -> None:
    client = await client_with_balance(salon, "+79991234567", 500)
    await make_staff(salon, OLGA)
    token = confirm_token(await tg.say(OLGA, f"/redeem {client.code} 100"))
    await asyncio.gather(tg.press(OLGA, f"rc:{token}"), tg.press(OLGA, f"rc:{token}"))
    assert await debits(client) == [-100]
    assert (await Client.get(id=client.id)).balance == 400


async def test_redeem_shortcut_goes_straight_to_confirmation(tg: Harness, salon: Company) -> None:
    client = await client_with_balance(salon, "+79991234567", 500)
    await make_staff(salon, OLGA)
    sent = await tg.say(OLGA, f"/redeem {codes.display(client.code)} 150")
    assert ("✅ Подтвердить", f"rc:{confirm_token(sent)}", None) in buttons(sent)
    assert await debits(client) == []


async def test_an_amount_above_the_balance_is_refused_with_the_balance(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 120)
    await make_staff(salon, OLGA)
    sent = await tg.say(OLGA, f"/redeem {client.code} 500")
    assert "баланс 120" in said(sent)
    assert not [d for _t, d, _u in buttons(sent) if d and d.startswith("rc:")]
    # Still asking: a smaller amount goes on to the confirmation.
    assert confirm_token(await tg.say(OLGA, "100"))
    assert await debits(client) == []


async def test_the_balance_falling_meanwhile_refuses_the_confirmation(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 300)
    await make_staff(salon, OLGA)
    token = confirm_token(await tg.say(OLGA, f"/redeem {client.code} 250"))
    await ledger.redeem(client.id, 100, "elsewhere")
    sent = await tg.press(OLGA, f"rc:{token}")
    assert "баланс сейчас 200" in said(sent)
    assert await debits(client) == [-100]


async def test_cancel_debits_nothing_and_the_token_is_spent(tg: Harness, salon: Company) -> None:
    client = await client_with_balance(salon, "+79991234567", 300)
    await make_staff(salon, OLGA)
    token = confirm_token(await tg.say(OLGA, f"/redeem {client.code} 100"))
    assert "не списаны" in said(await tg.press(OLGA, f"rx:{token}"))
    assert "больше не действует" in said(await tg.press(OLGA, f"rc:{token}"))
    assert await debits(client) == []


async def test_every_failure_is_the_same_not_found_and_five_lock_code_entry(
    tg: Harness, salon: Company
) -> None:
    mine = await client_with_balance(salon, "+79991234567", 300)
    other_salon = await make_salon(777, title="Студия Лилия")
    theirs = await client_with_balance(other_salon, "+79990001122", 300)
    await make_staff(salon, OLGA)
    valid_unknown = "0000000" + "0" + codes.check_symbol("00000000")
    typo = mine.code[:-1] + ("0" if mine.code[-1] != "0" else "1")
    for attempt in (theirs.code, valid_unknown, typo, "hello"):
        sent = await tg.say(OLGA, f"/redeem {attempt}")
        assert said(sent) == "Клиент не найден. Проверьте код и попробуйте ещё раз.", attempt
    # The fifth locks, and says so rather than "try again".
    assert "заблокирован" in said(await tg.say(OLGA, f"/redeem {theirs.code} 100"))
    # Locked now: even a right code is not looked up.
    sent = await tg.say(OLGA, f"/redeem {mine.code} 100")
    assert "заблокирован" in said(sent)
    assert "заблокирован" in said(await tg.say(OLGA, f"/lookup {mine.code}"))
    staff = await Staff.get(telegram_user_id=OLGA.id)
    assert staff.locked_until is not None
    assert staff.locked_until - datetime.now(UTC) > timedelta(minutes=14)
    # Another staff member is not affected; and after 15 minutes Olga is back.
    await make_staff(salon, IRA)
    assert confirm_token(await tg.say(IRA, f"/redeem {mine.code} 100"))
    await Staff.filter(id=staff.id).update(locked_until=datetime.now(UTC) - timedelta(seconds=1))
    assert confirm_token(await tg.say(OLGA, f"/redeem {mine.code} 100"))
    assert await debits(theirs) == [] and await debits(mine) == []


async def test_failures_older_than_the_window_do_not_count(salon: Company) -> None:
    staff = await Staff.create(company=salon, telegram_user_id=1, name="x")
    start = datetime.now(UTC)

    async def fail(minute: int) -> datetime | None:
        return await staff_service.record_failure(staff.id, start + timedelta(minutes=minute))

    for minute in (0, 10, 11, 12):
        assert await fail(minute) is None
    # The fifth comes 16 minutes after the first: only four are within 15 minutes.
    assert await fail(16) is None
    assert await fail(17) == start + timedelta(minutes=32)


async def test_the_role_is_read_from_the_database_on_every_action(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 300)
    olga = await make_staff(salon, OLGA, StaffRole.ADMIN)
    token = confirm_token(await tg.say(OLGA, f"/redeem {client.code} 100"))
    # Removed between the request and the tap: the tap does nothing.
    await Staff.filter(id=olga.id).update(active=False)
    assert "больше не действует" in said(await tg.press(OLGA, f"rc:{token}"))
    assert await debits(client) == []
    await Staff.filter(id=olga.id).update(active=True, role=StaffRole.STAFF)
    sent = await tg.say(OLGA, f"/adjust {client.code} +50 подарок")
    assert "только администраторы" in said(sent)
    assert (await Client.get(id=client.id)).balance == 300


async def test_lookup_by_code_or_phone_shows_the_card_and_admins_may_adjust(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 300, name="Анна Петрова")
    await make_staff(salon, OLGA)
    await make_staff(salon, IRA, StaffRole.ADMIN)
    sent = await tg.say(OLGA, f"/lookup {client.code}")
    assert "Анна" in said(sent) and "300" in said(sent) and "Петрова" not in said(sent)
    assert codes.display(client.code) not in said(sent)  # a redeem needs the client's code
    assert buttons(sent) == []
    sent = await tg.say(IRA, "🔎 Найти клиента")
    sent = await tg.say(IRA, "8 999 123-45-67")
    assert "Анна" in said(sent)
    assert ("✏️ Изменить баланс клиента", f"aj:{client.id}", None) in buttons(sent)
    assert NOT_FOUND in said(await tg.say(IRA, "/lookup +79990000000"))


async def test_an_admin_adjusts_with_a_required_reason_and_the_client_is_told(
    tg: Harness, salon: Company
) -> None:
    client = await join(tg, ANNA, salon, "+79991234567")
    await ledger.accrue(client.id, 300, "visit:1")
    admin = await make_staff(salon, OLGA, StaffRole.ADMIN)
    sent = await tg.say(OLGA, f"/adjust {client.code} -50")
    assert "Причина" in said(sent)
    before = len(tg.session.requests)
    sent = await tg.say(OLGA, "ошибка кассира")
    assert "−50" in said(sent) and "Новый баланс: 250" in said(sent)
    entry = await LedgerEntry.get(kind=LedgerKind.MANUAL)
    assert (entry.amount, entry.reason, entry.staff_id) == (-50, "ошибка кассира", admin.id)
    to_client = [m for m in tg.session.sent(before) if isinstance(m, SendMessage)]
    assert any(m.chat_id == ANNA.id and "-50" in m.text for m in to_client)
    # In one line, and below zero is refused.
    sent = await tg.say(OLGA, f"/adjust {client.code} +25 подарок ко дню рождения")
    assert (await Client.get(id=client.id)).balance == 275
    sent = await tg.say(OLGA, f"/adjust {client.code} -1000 ошибка")
    assert "меньше нуля" in said(sent)


async def test_adjust_from_a_lookup_button(tg: Harness, salon: Company) -> None:
    client = await client_with_balance(salon, "+79991234567", 100)
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    await tg.press(OLGA, f"aj:{client.id}")
    await tg.say(OLGA, "+40")
    await tg.say(OLGA, "компенсация")
    assert (await Client.get(id=client.id)).balance == 140


async def test_a_code_sent_on_its_own_starts_a_redeem(tg: Harness, salon: Company) -> None:
    client = await client_with_balance(salon, "+79991234567", 100)
    await make_staff(salon, OLGA)
    sent = await tg.say(OLGA, codes.display(client.code))
    assert "Сколько бонусов списать" in said(sent)


@pytest.mark.postgres
async def test_two_staff_redeeming_one_client_at_once_never_go_below_zero(
    orm: str,
) -> None:
    salon = await make_salon()
    client = await client_with_balance(salon, "+79991234567", 100)
    olga = await make_staff(salon, OLGA)
    ira = await make_staff(salon, IRA)
    # Two dispatchers, as on two replicas (each with its own FSM memory).
    harnesses = []
    for _ in range(2):
        bot, session = recording_bot()
        outbound = Outbound({"telegram": TelegramChannel(bot)})
        dialog = Dialog(RoutingNotifier(outbound, LoggingNotifier()), outbound=outbound)
        harnesses.append(Harness(build_dispatcher(dialog), bot, session, dialog))
    a, b = harnesses
    for round_ in range(5):
        if round_:
            await ledger.accrue(client.id, 70, f"topup:{round_}")
        token_a = confirm_token(await a.say(OLGA, f"/redeem {client.code} 70"))
        token_b = confirm_token(await b.say(IRA, f"/redeem {client.code} 70"))
        results = await asyncio.gather(
            a.press(OLGA, f"rc:{token_a}"), b.press(IRA, f"rc:{token_b}")
        )
        outcomes = sorted("Готово" in said(r) for r in results)
        assert outcomes == [False, True], [said(r) for r in results]
        balance = (await Client.get(id=client.id)).balance
        assert balance == 30
    assert await ledger.reconcile() == []
    staff_ids = set(
        await LedgerEntry.filter(kind=LedgerKind.REDEMPTION).values_list("staff_id", flat=True)
    )
    assert staff_ids <= {olga.id, ira.id}
    for h in harnesses:
        await h.bot.session.close()


async def test_staff_without_a_client_card_get_their_menu_on_start(
    tg: Harness, salon: Company
) -> None:
    await make_staff(salon, OLGA)
    sent = await tg.say(OLGA, "/start")
    menu = keyboard(sent)
    assert "С возвращением" in said(sent)
    assert menu is not None and menu.keyboard[0][0].text == "💳 Списать бонусы"
