"""One confirmation timeout for every channel, kept by the dialog (bot.dialog.staff.
CONFIRM_WITHIN): the WhatsApp adapter used to keep its own two minutes, and a Telegram Confirm
button debited whenever it was pressed, an hour later included. A redeem pending from before
the rule (no time kept with it) is answered, not debited."""

from __future__ import annotations

from bot.dialog import CONSOLE, Dialog, Session, actions
from bot.dialog.staff import CONFIRM_WITHIN
from core.models import Client, Company, LedgerEntry, Staff, StaffRole
from core.notifications import LoggingNotifier
from tests.bot import conftest as bot_fixtures
from tests.bot.conftest import Harness, client_with_balance, make_staff, said
from tests.bot.test_staff_flows import OLGA, confirm_token

# The dispatcher over the recording Bot API session, and a salon, as in tests/bot.
tg = bot_fixtures.tg
salon = bot_fixtures.salon

EXPIRED = "истекли"


async def test_a_telegram_confirm_pressed_too_late_debits_nothing(
    tg: Harness, salon: Company
) -> None:
    now = [1_000_000.0]
    tg.dialog.clock = lambda: now[0]
    client = await client_with_balance(salon, "+79991234567", 500)
    await make_staff(salon, OLGA)

    token = confirm_token(await tg.say(OLGA, f"/redeem {client.code} 100"))
    now[0] += CONFIRM_WITHIN.total_seconds() + 1
    assert EXPIRED in said(await tg.press(OLGA, f"rc:{token}"))
    assert not await LedgerEntry.exists(client_id=client.id, amount=-100)
    assert (await Client.get(id=client.id)).balance == 500

    # Within the time it debits as before.
    token = confirm_token(await tg.say(OLGA, f"/redeem {client.code} 100 "))
    now[0] += CONFIRM_WITHIN.total_seconds() - 1
    assert "Готово" in said(await tg.press(OLGA, f"rc:{token}"))
    assert (await Client.get(id=client.id)).balance == 400


async def test_a_redeem_pending_from_before_the_rule_is_answered(salon: Company) -> None:
    client = await client_with_balance(salon, "+79991234567", 500)
    staff = await make_staff(salon, OLGA, StaffRole.ADMIN)
    await Staff.filter(id=staff.id).update(phone="+79995550000")
    dialog = Dialog(LoggingNotifier())
    pending = {"token": "oldtoken", "company_id": salon.id, "client_id": client.id, "amount": 100}
    s = Session(
        CONSOLE,
        identity={"phone": "+79995550000"},
        data={"company_id": salon.id, "redeem": pending},
    )
    await dialog.prepare(s)
    replies = await dialog.action(s, actions.ConfirmRedeem("oldtoken"))
    assert EXPIRED in replies[0].text
    assert "redeem" not in s.data or s.data["redeem"] is None
    assert (await Client.get(id=client.id)).balance == 500
