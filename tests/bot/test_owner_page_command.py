"""Issue 14: an admin asks for the owner's page in chat (`/owner` or the menu button) and gets
a fresh signed link; staff who are not admins, and clients, do not."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bot.dialog import Dialog
from bot.notifier import RoutingNotifier
from bot.outbound import Outbound
from bot.telegram.delivery import TelegramChannel
from bot.telegram.dispatcher import build_dispatcher
from core.marketplace import OWNER_PURPOSE, issue_owner_token, read_token
from core.models import Company, StaffRole
from core.notifications import LoggingNotifier
from tests.bot.conftest import Harness, join, keyboard, make_staff, said
from tests.fakes.telegram import Person, recording_bot

KEY = "k" * 48
BASE = "https://salonbot.example"
OLGA = Person(8101, "Ольга")  # the admin
IRA = Person(8102, "Ирина")  # staff
ANNA = Person(7101, "Анна")  # a client
OWNERS_PAGE = "🏠 Страница владельца"


def link_for(company: Company) -> str:
    return f"{BASE}/marketplace/onboarding?token={issue_owner_token(KEY, company.yclients_id)}"


@pytest.fixture
async def owner_tg(orm: str) -> AsyncIterator[Harness]:
    bot, session = recording_bot()
    outbound = Outbound({"telegram": TelegramChannel(bot)})
    notifier = RoutingNotifier(outbound, fallback=LoggingNotifier())
    dialog = Dialog(notifier, outbound=outbound, owner_link=link_for)
    yield Harness(build_dispatcher(dialog), bot, session, dialog)
    await bot.session.close()


async def test_an_admin_gets_a_signed_link_to_the_owners_page(
    owner_tg: Harness, salon: Company
) -> None:
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    sent = await owner_tg.say(OLGA, "/start")
    menu = keyboard(sent)
    assert menu is not None
    assert OWNERS_PAGE in [button.text for row in menu.keyboard for button in row]
    for asked in ("/owner", OWNERS_PAGE):
        text = said(await owner_tg.say(OLGA, asked))
        found = re.search(rf"{re.escape(BASE)}/marketplace/onboarding\?token=(\S+)", text)
        assert found is not None, text
        claims = read_token(KEY, found.group(1))
        assert claims.purpose == OWNER_PURPOSE and claims.yclients_id == salon.yclients_id
        assert "не пересылайте" in text


async def test_staff_and_clients_get_no_owners_link(owner_tg: Harness, salon: Company) -> None:
    await make_staff(salon, IRA, StaffRole.STAFF)
    text = said(await owner_tg.say(IRA, "/owner"))
    assert "только администраторы" in text and "token=" not in text
    menu = keyboard(await owner_tg.say(IRA, "/start"))
    assert menu is not None
    assert OWNERS_PAGE not in [button.text for row in menu.keyboard for button in row]
    await join(owner_tg, ANNA, salon, "+79990001122")
    text = said(await owner_tg.say(ANNA, "/owner"))
    assert "token=" not in text


async def test_where_no_page_is_served_the_admin_is_told_so(tg: Harness, salon: Company) -> None:
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    assert "недоступна" in said(await tg.say(OLGA, "/owner"))
