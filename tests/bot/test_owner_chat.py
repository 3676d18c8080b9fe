"""Issue 14: the salon's admins run it in chat — settings, the rules told to clients, staff
invites and roles — on Telegram (the real dispatcher) and WhatsApp (the channel over a
recording gateway), both databases."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

from aiogram.methods import SendPhoto, TelegramMethod

from bot.console import Console
from bot.dialog import owner
from bot.dialog.formats import NBSP
from core import salon_settings
from core.bookings import apply_records
from core.models import (
    Client,
    Company,
    LedgerEntry,
    LedgerKind,
    SettingChange,
    Staff,
    StaffInvite,
    StaffRole,
)
from tests.bot.conftest import Harness, bot_username, buttons, join, make_salon, make_staff, said
from tests.fakes.telegram import Person
from tests.regressions.test_whatsapp_staff_redelivery import SESSION, STAFF_CHAT, Chat

OLGA = Person(8001, "Ольга")  # the admin
IRA = Person(8002, "Ирина")  # staff, not an admin
ANNA = Person(7001, "Анна")  # a client
KATE = Person(7002, "Екатерина")  # another person


def button(sent: list[TelegramMethod[Any]], prefix: str) -> str:
    found = [d for _t, d, _u in buttons(sent) if d and d.startswith(prefix)]
    assert found, f"no {prefix!r} button in {said(sent)!r}"
    return found[0]


def pct(n: int) -> str:
    return f"{n}{NBSP}%"


async def change_in_chat(tg: Harness, admin: Person, key: str, value: str) -> str:
    """Open the settings, pick `key`, send `value`, confirm: what the admin read last."""
    shown = await tg.say(admin, "/settings")
    await tg.press(admin, button(shown, f"se:{key}"))
    asked = await tg.say(admin, value)
    return said(await tg.press(admin, button(asked, "sc:")))


def completed(record_id: int, cost: int, phone: str = "79991234567") -> dict[str, Any]:
    return {
        "id": record_id,
        "company_id": 555,
        "staff": {"id": 7, "name": "Ольга"},
        "services": [{"id": 1, "title": "Стрижка", "cost": cost, "first_cost": cost}],
        "client": {"id": 900, "name": "Анна", "phone": phone},
        "datetime": "2026-11-20T12:00:00+03:00",
        "comment": "",
        "attendance": 1,
        "visit_attendance": 1,
        "deleted": False,
        "last_change_date": "2026-11-20T10:00:00+0300",
    }


# --- settings -------------------------------------------------------------------------------


async def test_an_admin_changes_the_accrual_in_chat_and_the_next_visit_earns_by_it(
    tg: Harness, salon: Company
) -> None:
    admin = await make_staff(salon, OLGA, StaffRole.ADMIN)
    client = await join(tg, ANNA, salon, "+79991234567")
    shown = said(await tg.say(OLGA, "⚙️ Настройки"))
    assert f"Бонусы за визит, процент от счёта: {pct(10)}" in shown
    assert "Напоминание накануне, во сколько: 18:00" in shown
    assert "Цифры недели для администраторов: понедельник 10:00" in shown

    sent = await tg.press(OLGA, "se:accrual_percent")
    assert f"сейчас {pct(10)}" in said(sent) and "от 0 до 100" in said(sent)
    asked = await tg.say(OLGA, "7")
    assert f"Изменить «Бонусы за визит, процент от счёта»: {pct(10)} → {pct(7)}?" in said(asked)
    # Not stored before the confirmation.
    assert (await Company.get(id=salon.id)).accrual_percent == 10
    done = said(await tg.press(OLGA, button(asked, "sc:")))
    assert f"Сохранено: «Бонусы за визит, процент от счёта» — теперь {pct(7)}." in done

    audit = await SettingChange.get(company_id=salon.id)
    assert (audit.actor, audit.key, audit.old_value, audit.new_value) == (
        f"staff:{admin.id}",
        "accrual_percent",
        "10",
        "7",
    )
    # The next completed visit earns 7 % of 2 000 ₽.
    await apply_records(await Company.get(id=salon.id), [completed(1, 2000)])
    accrual = await LedgerEntry.get(client_id=client.id, kind=LedgerKind.ACCRUAL)
    assert accrual.amount == 140
    # The client is told the new rule on the balance screen.
    assert f"{pct(7)} от каждого визита возвращается вам бонусами" in said(
        await tg.say(ANNA, "🎁 Бонусы")
    )


async def test_a_bad_value_is_answered_with_the_allowed_values_and_stores_nothing(
    tg: Harness, salon: Company
) -> None:
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    await tg.say(OLGA, "/settings")
    await tg.press(OLGA, "se:max_redeem_percent")
    wrong = said(await tg.say(OLGA, "150"))
    assert "«150» не подходит для «Бонусами можно оплатить, процент счёта»" in wrong
    assert "целое число от 0 (бонусы не принимаются) до 100 (весь счёт)" in wrong
    # The question stays open: the next value is taken.
    asked = await tg.say(OLGA, "25")
    assert f"{pct(100)} → {pct(25)}" in said(asked)

    await tg.press(OLGA, "se:digest_at")
    assert "не подходит" in said(await tg.say(OLGA, "каждый день"))
    assert "пятница 18:30" in said(await tg.say(OLGA, "пт 18:30"))

    await tg.press(OLGA, "se:quiet_hours")
    assert "не подходит" in said(await tg.say(OLGA, "25:00-09:00"))
    assert not await SettingChange.exists()
    assert (await Company.get(id=salon.id)).max_redeem_percent == 100


async def test_off_words_and_a_cancel(tg: Harness, salon: Company) -> None:
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    assert "Сохранено" in await change_in_chat(tg, OLGA, "review_delay_hours", "выкл")
    assert (await Company.get(id=salon.id)).review_delay_hours is None
    assert salon_settings.loop(await Company.get(id=salon.id)).review_delay_hours is None

    await tg.say(OLGA, "/settings")
    await tg.press(OLGA, "se:welcome_bonus")
    asked = await tg.say(OLGA, "300")
    assert "нет → 300 бонусов" in said(asked)
    token = button(asked, "sc:").removeprefix("sc:")
    assert "ничего не изменилось" in said(await tg.press(OLGA, f"sx:{token}"))
    # The cancelled request cannot be confirmed afterwards.
    assert "больше не действует" in said(await tg.press(OLGA, f"sc:{token}"))
    assert (await Company.get(id=salon.id)).welcome_bonus == 0

    # A confirmation long after the question changes nothing.
    now = [time.time()]
    tg.dialog.clock = lambda: now[0]
    await tg.press(OLGA, "se:welcome_bonus")
    asked = await tg.say(OLGA, "300")
    now[0] += 11 * 60
    assert "поздно" in said(await tg.press(OLGA, button(asked, "sc:")))
    assert (await Company.get(id=salon.id)).welcome_bonus == 0


async def test_who_is_not_an_admin_cannot_change_the_settings(tg: Harness, salon: Company) -> None:
    await make_staff(salon, IRA, StaffRole.STAFF)
    refused = "Это могут только администраторы салона."
    assert refused in said(await tg.say(IRA, "/settings"))
    assert refused in said(await tg.press(IRA, "se:accrual_percent"))
    # A client who types the command is answered as for any unknown text.
    await join(tg, ANNA, salon, "+79991234567")
    assert "Не понял" in said(await tg.say(ANNA, "/settings"))

    # An admin demoted between the question and the confirmation: the tap is refused.
    olga = await make_staff(salon, OLGA, StaffRole.ADMIN)
    await tg.say(OLGA, "/settings")
    await tg.press(OLGA, "se:accrual_percent")
    asked = await tg.say(OLGA, "50")
    await Staff.filter(id=olga.id).update(role=StaffRole.STAFF)
    assert refused in said(await tg.press(OLGA, button(asked, "sc:")))
    assert (await Company.get(id=salon.id)).accrual_percent == 10
    assert not await SettingChange.exists()


# --- the rules, told to clients -------------------------------------------------------------


async def test_a_client_is_told_the_rules_on_joining_and_on_the_balance_screen(
    tg: Harness,
) -> None:
    salon = await make_salon(welcome_bonus=50, max_redeem_percent=30)
    await tg.say(ANNA, f"/start salon-{salon.yclients_id}")
    joined = said(await tg.feed(ANNA.shares_contact("+79991234567")))
    rules = (
        f"{pct(10)} от каждого визита возвращается вам бонусами. 1 бонус = 1 ₽. "
        f"Бонусами можно оплатить до {pct(30)} счёта. За то, что вы с нами, салон дарит "
        "50 бонусов."
    )
    assert rules in joined
    assert rules in said(await tg.say(ANNA, "🎁 Бонусы"))

    # In English, with the salon's own numbers once an admin changed them.
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    assert "Сохранено" in await change_in_chat(tg, OLGA, "accrual_percent", "3")
    assert "Сохранено" in await change_in_chat(tg, OLGA, "welcome_bonus", "1")
    await tg.say(ANNA, "/language en")
    shown = said(await tg.say(ANNA, "/balance"))
    assert f"{pct(3)} of every visit comes back to you as bonuses. 1 bonus = 1 ₽." in shown
    assert "For joining, the salon gives 1 bonus." in shown


# --- staff in chat ----------------------------------------------------------------------------


def invite_token(sent: list[TelegramMethod[Any]]) -> str:
    match = re.search(r"https://t\.me/salonbot_test\?start=staff-(\S+)", said(sent))
    assert match, said(sent)
    return match[1]


async def test_an_invite_made_in_chat_makes_one_staff_member_once(
    tg: Harness, salon: Company
) -> None:
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    tg.dialog.bot_username = bot_username
    team = await tg.say(OLGA, "👥 Сотрудники")
    assert "Ольга — администратор (вы)" in said(team)
    sent = await tg.press(OLGA, button(team, "inv:staff"))
    assert "сработает один раз" in said(sent) and "в Telegram" in said(sent)
    photo = [m for m in sent if isinstance(m, SendPhoto)]
    assert photo and photo[0].caption == "QR-код приглашения"
    token = invite_token(sent)

    assert "Ирина" not in said(await tg.say(OLGA, "/staff"))
    joined = said(await tg.say(IRA, f"/start staff-{token}"))
    assert "Салон Ромашка" in joined and "сотрудник" in joined
    ira = await Staff.get(company_id=salon.id, telegram_user_id=IRA.id)
    assert ira.role is StaffRole.STAFF and ira.active
    # Once: someone else with the same link gets nothing.
    assert "недействительно" in said(await tg.say(KATE, f"/start staff-{token}"))
    assert not await Staff.exists(telegram_user_id=KATE.id)

    # A revoked invite is refused.
    sent = await tg.press(OLGA, "inv:admin")
    second = invite_token(sent)
    team = await tg.say(OLGA, "/staff")
    assert "Ирина — сотрудник" in said(team) and "Приглашение (администратор) до" in said(team)
    revoked = said(await tg.press(OLGA, button(team, "invx:")))
    assert "Приглашение отозвано" in revoked
    assert "недействительно" in said(await tg.say(KATE, f"/start staff-{second}"))
    assert not await Staff.exists(telegram_user_id=KATE.id)
    assert await StaffInvite.filter(company_id=salon.id, used_by_id__isnull=True).count() == 1


async def test_an_admin_changes_a_role_and_removes_someone(tg: Harness, salon: Company) -> None:
    olga = await make_staff(salon, OLGA, StaffRole.ADMIN)
    ira = await make_staff(salon, IRA, StaffRole.STAFF)
    card = await tg.press(OLGA, f"mem:{ira.id}")
    assert "Ирина — сотрудник" in said(card)
    done = said(await tg.press(OLGA, button(card, f"role:{ira.id}:admin")))
    assert "Готово: Ирина — администратор." in done
    assert (await Staff.get(id=ira.id)).role is StaffRole.ADMIN
    # Now an admin herself, read from the database at once.
    assert "Настройки салона" in said(await tg.say(IRA, "/settings"))

    # Nobody changes their own role or removes themselves.
    assert "нельзя" in said(await tg.press(OLGA, f"role:{olga.id}:staff"))
    asked = await tg.press(OLGA, f"rm:{ira.id}")
    assert "Убрать из сотрудников салона: Ирина?" in said(asked)
    gone = said(await tg.press(OLGA, button(asked, f"rm:{ira.id}:1")))
    assert "больше не в числе сотрудников" in gone
    assert not (await Staff.get(id=ira.id)).active
    # Removed: staff commands are unknown to her now.
    assert "Настройки салона" not in said(await tg.say(IRA, "/settings"))


async def test_without_a_telegram_bot_an_invite_is_explained(tg: Harness, salon: Company) -> None:
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    tg.dialog.bot_username = None
    sent = said(await tg.press(OLGA, "inv:staff"))
    assert "Telegram-боте салона, а он ещё не подключён" in sent
    assert not await StaffInvite.exists()


# --- WhatsApp: the same menus, as numbered text --------------------------------------------


async def wa_salon(role: StaffRole) -> Company:
    company = await make_salon()
    await Company.filter(id=company.id).update(whatsapp_session=SESSION)
    phone = "+" + STAFF_CHAT.removesuffix("@c.us")
    await Staff.create(company=company, phone=phone, name="Ольга", role=role)
    return await Company.get(id=company.id)


def option(text: str, label: str) -> str:
    """The number WhatsApp shows before a choice that starts with `label`."""
    match = re.search(rf"^(\d+) — {re.escape(label)}", text, re.MULTILINE)
    assert match, f"no {label!r} in {text!r}"
    return match[1]


async def test_whatsapp_admin_changes_a_setting_from_the_menu(wa: Chat) -> None:
    salon = await wa_salon(StaffRole.ADMIN)
    menu = await wa.says("меню")
    assert "«настройки»" in menu and "«сотрудники»" in menu and "«статистика»" in menu
    shown = await wa.says("настройки")
    assert "Настройки салона:" in shown
    asked = await wa.says(option(shown, "Бонусы за визит"))
    assert f"сейчас {pct(10)}" in asked
    assert "не подходит" in await wa.says("сто")
    confirm = await wa.says("8")
    assert f"{pct(10)} → {pct(8)}" in confirm
    assert "Сохранено" in await wa.says(option(confirm, "✅ Подтвердить"))
    assert (await Company.get(id=salon.id)).accrual_percent == 8
    change = await SettingChange.get(company_id=salon.id)
    assert change.actor.startswith("staff:")


async def test_whatsapp_staff_who_are_not_admins_are_refused(wa: Chat) -> None:
    await wa_salon(StaffRole.STAFF)
    assert "«настройки»" not in await wa.says("меню")
    assert "Это могут только администраторы салона." in await wa.says("настройки")


async def test_whatsapp_admin_gets_an_invite_that_says_it_opens_in_telegram(wa: Chat) -> None:
    await wa_salon(StaffRole.ADMIN)
    team = await wa.says("сотрудники")
    sent_before = len(wa.gateway.calls)
    text = await wa.says(option(team, "➕ Пригласить сотрудника"))
    assert "https://t.me/salonbot_test?start=staff-" in text and "в Telegram" in text
    images = [c for c in wa.gateway.calls[sent_before:] if c[0] == "image"]
    assert images and images[0][2].startswith("QR-код приглашения")


async def test_whatsapp_a_new_client_is_told_the_rules(wa: Chat) -> None:
    company = await make_salon(max_redeem_percent=30)
    await Company.filter(id=company.id).update(whatsapp_session=SESSION)
    first = await wa.says("привет")
    assert f"{pct(10)} от каждого визита возвращается вам бонусами" in first
    assert f"до {pct(30)} счёта" in first
    assert await Client.exists(company_id=company.id, whatsapp_chat_id=STAFF_CHAT)


async def test_the_console_has_the_same_settings_menu(orm: str, tmp_path: Path) -> None:
    salon = await make_salon()
    await Staff.create(company=salon, phone="+79995550001", name="Ольга", role=StaffRole.ADMIN)
    out = io.StringIO()
    console = Console(salon, "+79995550001", as_staff=True, out=out, images=tmp_path)
    await console.say("настройки")
    shown = out.getvalue()
    assert "Настройки салона:" in shown
    number = re.search(r"\[(\d+)\] Приветственный бонус", shown)
    assert number, shown
    await console.say(number[1])
    await console.say("200")
    confirm = re.search(r"\[(\d+)\] ✅ Подтвердить", out.getvalue())
    assert confirm, out.getvalue()
    await console.say(confirm[1])
    assert "Сохранено: «Приветственный бонус» — теперь 200 бонусов." in out.getvalue()
    assert (await Company.get(id=salon.id)).welcome_bonus == 200


def test_off_words_mean_zero_where_zero_is_none() -> None:
    assert owner._typed("welcome_bonus", "Выкл") == "0"
    assert owner._typed("reminder_day_before_at", "нет") == "off"
    assert owner._typed("digest_at", "пт 18:30") == "fri 18:30"
    assert salon_settings.parse("welcome_bonus", owner._typed("welcome_bonus", "off")) == 0
