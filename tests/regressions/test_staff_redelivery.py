"""Issue 10, medium 2: Telegram delivers an update again when its answer was lost (webhook) or
polling restarted before confirming it — the same update_id, the same message. A staff action
must write once however often its message (or its button press) arrives: the idempotency keys
derive from the message, not from a random token made per run.

Through the real dispatcher against the recording Bot API session; both databases."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from aiogram.methods import SendMessage

from bot.console import Console
from core import staff as staff_service
from core.models import Client, Company, LedgerEntry, LedgerKind, Staff, StaffInvite, StaffRole
from tests.bot import conftest as bot_fixtures
from tests.bot.conftest import Harness, buttons, client_with_balance, make_staff, said
from tests.fakes.telegram import Person

# The dispatcher over the recording Bot API session, and a salon, as in tests/bot.
tg = bot_fixtures.tg
salon = bot_fixtures.salon

OLGA = Person(8101, "Ольга")  # staff (an admin where it matters)
ANNA = Person(7101, "Анна")  # a client


async def entries(client: Client, kind: LedgerKind) -> list[int]:
    return list(
        await LedgerEntry.filter(client_id=client.id, kind=kind).values_list("amount", flat=True)
    )


def confirm_tokens(sent: list[Any]) -> list[str]:
    return [d.removeprefix("rc:") for _t, d, _u in buttons(sent) if d and d.startswith("rc:")]


async def balance(client: Client) -> int:
    return (await Client.get(id=client.id)).balance


async def with_telegram(client: Client) -> Client:
    """The client is reachable in Telegram, so a notice to them is a visible Bot API call."""
    await Client.filter(id=client.id).update(telegram_user_id=ANNA.id, last_channel="telegram")
    return await Client.get(id=client.id)


def notices_to(sent: list[Any], person: Person) -> list[str]:
    return [m.text for m in sent if isinstance(m, SendMessage) and m.chat_id == person.id]


# --- adjust ---------------------------------------------------------------------------------


async def test_a_redelivered_adjust_command_changes_the_balance_once(
    tg: Harness, salon: Company
) -> None:
    client = await with_telegram(await client_with_balance(salon, "+79991234567", 300))
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    update = OLGA.says(f"/adjust {client.code} +100 подарок ко дню рождения")

    first = await tg.feed(update)
    again = await tg.feed(update)  # the same update_id and message_id

    assert await entries(client, LedgerKind.MANUAL) == [100]
    assert await balance(client) == 400
    # The repeat answers as the first did, and the client hears of it once.
    assert "Новый баланс: 400" in said(first) and "Новый баланс: 400" in said(again)
    assert len(notices_to(first, ANNA)) == 1 and notices_to(again, ANNA) == []


async def test_a_redelivered_negative_adjust_takes_away_once(tg: Harness, salon: Company) -> None:
    client = await client_with_balance(salon, "+79991234567", 500)
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    update = OLGA.says(f"/adjust {client.code} -200 ошибка кассира")
    await asyncio.gather(tg.feed(update), tg.feed(update))  # two replicas, both at once
    await tg.feed(update)
    assert await entries(client, LedgerKind.MANUAL) == [-200]
    assert await balance(client) == 300


async def test_the_reason_of_a_step_by_step_adjust_delivered_twice_applies_once(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 300)
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    await tg.say(OLGA, "/adjust")
    await tg.say(OLGA, client.code)
    await tg.say(OLGA, "+50")
    reason = OLGA.says("компенсация")
    # Two replicas take the same delivery at once (both read the flow before either saves it),
    # then Telegram delivers it again.
    await asyncio.gather(tg.feed(reason), tg.feed(reason))
    await tg.feed(reason)
    assert await entries(client, LedgerKind.MANUAL) == [50]
    assert await balance(client) == 350


async def test_adjust_from_a_lookup_button_delivered_again_applies_once(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 300)
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    await tg.say(OLGA, f"/lookup {client.code}")
    press = OLGA.presses(f"aj:{client.id}")
    await tg.feed(press)
    await tg.feed(press)  # the press again: it only asks, nothing is written
    await tg.say(OLGA, "-100")
    reason = OLGA.says("возврат услуги")
    await asyncio.gather(tg.feed(reason), tg.feed(reason))
    assert await entries(client, LedgerKind.MANUAL) == [-100]
    assert await balance(client) == 200


async def test_two_different_adjust_messages_are_two_adjustments(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 300)
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    # The same words typed twice are two messages: both count.
    await tg.say(OLGA, f"/adjust {client.code} +10 бонус")
    await tg.say(OLGA, f"/adjust {client.code} +10 бонус")
    assert await entries(client, LedgerKind.MANUAL) == [10, 10]
    assert await balance(client) == 320


# --- redeem ---------------------------------------------------------------------------------


async def test_a_redeem_command_delivered_again_after_its_confirmation_debits_once(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 500)
    await make_staff(salon, OLGA)
    request = OLGA.says(f"/redeem {client.code} 200")
    (token,) = confirm_tokens(await tg.feed(request))
    press = OLGA.presses(f"rc:{token}")
    assert "Новый баланс: 300" in said(await tg.feed(press))

    # The webhook's answer to the request was lost: Telegram delivers it again, then the press.
    again = await tg.feed(request)
    assert "Уже списано бонусов: 200" in said(again)
    assert confirm_tokens(again) == []
    assert "Уже списано" in said(await tg.feed(press))
    # Whatever the staff member taps now, nothing more is debited.
    for token in confirm_tokens(again):
        await tg.press(OLGA, f"rc:{token}")
    assert await entries(client, LedgerKind.REDEMPTION) == [-200]
    assert await balance(client) == 300


async def test_a_redeem_command_delivered_twice_asks_once_for_the_same_request(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 500)
    await make_staff(salon, OLGA)
    request = OLGA.says(f"/redeem {client.code} 100")
    first, again = await tg.feed(request), await tg.feed(request)
    # Both answers carry the same request: confirming both debits once.
    assert confirm_tokens(first) == confirm_tokens(again) and len(confirm_tokens(first)) == 1
    for sent in (first, again):
        await tg.press(OLGA, f"rc:{confirm_tokens(sent)[0]}")
    assert await entries(client, LedgerKind.REDEMPTION) == [-100]
    assert await balance(client) == 400


async def test_the_step_by_step_redeem_delivered_again_debits_once(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 500)
    await make_staff(salon, OLGA)
    await tg.say(OLGA, "/redeem")
    code = OLGA.says(client.code)
    await tg.feed(code)
    amount = OLGA.says("150")
    first, again = await tg.feed(amount), await tg.feed(amount)
    tokens = confirm_tokens(first) + confirm_tokens(again)
    assert tokens and len(set(tokens)) == 1
    press = OLGA.presses(f"rc:{tokens[0]}")
    await asyncio.gather(tg.feed(press), tg.feed(press))
    # Everything once more, in order, after the debit.
    for update in (code, amount, press):
        sent = await tg.feed(update)
        for token in confirm_tokens(sent):
            await tg.press(OLGA, f"rc:{token}")
    assert await entries(client, LedgerKind.REDEMPTION) == [-150]
    assert await balance(client) == 350


async def test_a_code_sent_on_its_own_then_the_amount_delivered_again_debits_once(
    tg: Harness, salon: Company
) -> None:
    client = await client_with_balance(salon, "+79991234567", 500)
    await make_staff(salon, OLGA)
    await tg.say(OLGA, client.code)
    amount = OLGA.says("120")
    (token,) = confirm_tokens(await tg.feed(amount))
    await tg.press(OLGA, f"rc:{token}")
    await tg.say(OLGA, client.code)  # a new request for the same client …
    sent = await tg.feed(amount)  # … meets the old amount message delivered again
    assert "Уже списано бонусов: 120" in said(sent) and confirm_tokens(sent) == []
    assert await entries(client, LedgerKind.REDEMPTION) == [-120]


# --- joining --------------------------------------------------------------------------------


async def test_a_redelivered_invite_start_is_answered_as_joined_and_changes_nothing(
    tg: Harness, salon: Company
) -> None:
    token, _invite = await staff_service.create_invite(salon, StaffRole.ADMIN)
    start = OLGA.says(f"/start staff-{token}")
    first = await tg.feed(start)
    again = await tg.feed(start)
    assert "Салон Ромашка" in said(first) and "администратор" in said(first)
    assert "недействительно" not in said(again) and "Салон Ромашка" in said(again)
    staff = await Staff.get(company_id=salon.id, telegram_user_id=OLGA.id)
    assert await Staff.all().count() == 1 and staff.role is StaffRole.ADMIN
    invite = await StaffInvite.get()
    assert invite.used_by_id == staff.id


async def test_a_used_invite_opens_nothing_for_a_removed_member_or_anyone_else(
    tg: Harness, salon: Company
) -> None:
    token, _invite = await staff_service.create_invite(salon)
    start = OLGA.says(f"/start staff-{token}")
    await tg.feed(start)
    assert "недействительно" in said(await tg.say(Person(8102, "Ирина"), f"/start staff-{token}"))
    await Staff.filter(telegram_user_id=OLGA.id).update(active=False)
    # Removed since: neither the redelivered update nor the link opened again brings her back.
    assert "недействительно" in said(await tg.feed(start))
    assert "недействительно" in said(await tg.say(OLGA, f"/start staff-{token}"))
    assert not (await Staff.get(telegram_user_id=OLGA.id)).active
    assert await Staff.all().count() == 1


# --- the console ----------------------------------------------------------------------------


async def test_the_console_has_no_redelivery_each_line_is_an_action(
    salon: Company, tmp_path: Path
) -> None:
    client = await client_with_balance(salon, "+79991234567", 300)
    await Staff.create(company=salon, phone="+79995550000", name="Ольга", role=StaffRole.ADMIN)
    console = Console(salon, "+79995550000", as_staff=True, out=io.StringIO(), images=tmp_path)
    await console.say(f"/adjust {client.code} +10 бонус")
    await console.say(f"/adjust {client.code} +10 бонус")
    assert await entries(client, LedgerKind.MANUAL) == [10, 10]
