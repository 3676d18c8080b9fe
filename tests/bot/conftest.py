"""A real dispatcher (bot.telegram.build_dispatcher) over a recording Bot API session."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup

from bot.dialog import Dialog
from bot.notifier import RoutingNotifier
from bot.outbound import Outbound
from bot.telegram.delivery import TelegramChannel
from bot.telegram.dispatcher import build_dispatcher
from core import ledger
from core.clients import create_client
from core.models import Client, Company, IntegrationStatus, Staff, StaffRole
from core.notifications import LoggingNotifier
from tests.fakes.telegram import Person, RecordingSession, as_update, recording_bot

SERVICES = [
    {"id": 11, "title": "Стрижка", "price_min": 1500, "price_max": 1500},
    {"id": 12, "title": "Окрашивание", "price_min": 3000, "price_max": 6000},
    {"id": 13, "title": "Маникюр", "price_min": 0, "price_max": 0},
]


@dataclass
class Harness:
    dp: Dispatcher
    bot: Bot
    session: RecordingSession
    dialog: Dialog

    async def feed(self, raw: dict[str, Any]) -> list[TelegramMethod[Any]]:
        """Feed one update through the dispatcher; the Bot API calls it made."""
        start = len(self.session.requests)
        await self.dp.feed_update(self.bot, as_update(raw, self.bot))
        return self.session.requests[start:]

    async def say(self, person: Person, text: str) -> list[TelegramMethod[Any]]:
        return await self.feed(person.says(text))

    async def press(self, person: Person, data: str) -> list[TelegramMethod[Any]]:
        return await self.feed(person.presses(data))


def texts(methods: list[TelegramMethod[Any]]) -> list[str]:
    """What the person read: message texts, photo captions, edited texts."""
    found: list[str] = []
    for m in methods:
        if isinstance(m, SendMessage | EditMessageText):
            found.append(m.text)
        elif isinstance(m, SendPhoto):
            found.append(m.caption or "")
    return found


def said(methods: list[TelegramMethod[Any]]) -> str:
    return "\n".join(texts(methods))


def buttons(methods: list[TelegramMethod[Any]]) -> list[tuple[str, str | None, str | None]]:
    """(text, callback data, url) of every inline button sent."""
    found = []
    for m in methods:
        markup = getattr(m, "reply_markup", None)
        if isinstance(markup, InlineKeyboardMarkup):
            for row in markup.inline_keyboard:
                found += [(b.text, b.callback_data, b.url) for b in row]
    return found


def keyboard(methods: list[TelegramMethod[Any]]) -> ReplyKeyboardMarkup | None:
    """The last reply keyboard sent (the menu, or the contact button)."""
    found = None
    for m in methods:
        markup = getattr(m, "reply_markup", None)
        if isinstance(markup, ReplyKeyboardMarkup):
            found = markup
    return found


def answered(methods: list[TelegramMethod[Any]]) -> bool:
    return any(isinstance(m, AnswerCallbackQuery) for m in methods)


@pytest.fixture
async def tg(orm: str) -> AsyncIterator[Harness]:
    bot, session = recording_bot()
    outbound = Outbound({"telegram": TelegramChannel(bot)})
    notifier = RoutingNotifier(outbound, fallback=LoggingNotifier())
    dialog = Dialog(notifier, outbound=outbound)
    yield Harness(build_dispatcher(dialog), bot, session, dialog)
    await bot.session.close()


async def make_salon(
    yclients_id: int = 555,
    *,
    title: str = "Салон Ромашка",
    welcome_bonus: int = 0,
    status: IntegrationStatus = IntegrationStatus.ACTIVE,
) -> Company:
    form = 100_000 + yclients_id
    return await Company.create(
        yclients_id=yclients_id,
        title=title,
        hook_token=secrets.token_urlsafe(16),
        integration_status=status,
        accrual_percent=10,
        welcome_bonus=welcome_bonus,
        bookform_url=f"https://n{form}.yclients.com/",
        catalogue={"services": SERVICES, "staff": []},
    )


@pytest.fixture
async def salon(orm: str) -> Company:
    return await make_salon()


async def join(h: Harness, person: Person, company: Company, phone: str) -> Client:
    """The person opens the salon's link and shares their own phone."""
    await h.say(person, f"/start salon-{company.yclients_id}")
    await h.feed(person.shares_contact(phone))
    return await Client.get(company_id=company.id, telegram_user_id=person.id)


async def make_staff(company: Company, person: Person, role: StaffRole = StaffRole.STAFF) -> Staff:
    return await Staff.create(
        company=company, telegram_user_id=person.id, name=person.first_name, role=role
    )


async def client_with_balance(
    company: Company, phone: str, balance: int, name: str = "Мария"
) -> Client:
    client = (await create_client(company, phone=phone, name=name, welcome=False)).client
    if balance:
        await ledger.accrue(client.id, balance, f"seed:{client.id}")
        client.balance = balance
    return client
