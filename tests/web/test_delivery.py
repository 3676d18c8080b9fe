"""One client across messengers, delivery that falls back, and a person behind the bot —
through the real app against the Telegram Bot API fake and the WAHA emulator.

The fallback test is parametrized by the channel the notice falls back to: a new channel (MAX)
adds one entry to SIDES (how a client joins there and what they read there)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from core import codes, ledger
from core.models import AdminRelay, Client, Company, Staff, StaffRole
from core.notifications import notify_committed
from core.settings import Settings
from tests.fakes.telegram import TOKEN, FakeBotAPI, Person
from tests.web.onboarding_support import Bench, ClientFactory, open_bench
from tests.web.test_whatsapp_channel import (
    ANNA,
    NO_MANNERS,
    company_of,
    idle,
    salon,
    say,
    texts,
)
from web.keys import NOTIFIER

ANNA_TG = Person(7101, "Анна")
ADMIN_TG = Person(5101, "Ирина")
NOT_STAFF_TG = Person(5199, "Пётр")
ANNA_PHONE = "79991234567"


@dataclass
class World:
    bench: Bench
    telegram: FakeBotAPI
    session: str
    company: Company


@contextlib.asynccontextmanager
async def world(
    aiohttp_client: ClientFactory, settings: Settings, yclients_id: int
) -> AsyncIterator[World]:
    async with FakeBotAPI() as telegram:
        update = {
            **NO_MANNERS,
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_url": telegram.url,
            "telegram_mode": "polling",
        }
        async with open_bench(aiohttp_client, settings, settings_update=update) as bench:
            session = await salon(bench, yclients_id)
            await telegram.wait_for("deleteWebhook")
            yield World(bench, telegram, session, await company_of(session))


def to(person: Person, text: str) -> Callable[[Any], bool]:
    return lambda c: (
        c.params.get("chat_id") == person.id
        and text in str(c.params.get("text") or c.params.get("caption") or "")
    )


async def tg_say(w: World, person: Person, update: dict[str, Any], expect: str) -> Any:
    """A Telegram update from `person`; the bot's message to them that contains `expect`."""
    calls = len(w.telegram.calls)
    w.telegram.push(update)
    return await w.telegram.wait_for("sendMessage", to(person, expect), after=calls)


async def join_telegram(w: World) -> None:
    await tg_say(w, ANNA_TG, ANNA_TG.says(f"/start salon-{w.company.yclients_id}"), "номер")
    await tg_say(w, ANNA_TG, ANNA_TG.shares_contact(ANNA_PHONE), "номер сохранён")


def tg_sends_to(w: World, person: Person, since: int) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in w.telegram.calls[since:]
        if c.method == "sendMessage" and c.params.get("chat_id") == person.id
    ]


# --- the channels a notice can fall back to --------------------------------------------------


@dataclass(frozen=True)
class Side:
    # The client (Anna, phone ANNA_PHONE) starts using the channel.
    join: Callable[[World], Awaitable[None]]
    # A mark in what the channel delivered, and Anna's messages there since a mark.
    mark: Callable[[World], int]
    received: Callable[[World, int], list[str]]


async def _join_whatsapp(w: World) -> None:
    await say(w.bench, w.session, ANNA, "2")


SIDES = {
    "whatsapp": Side(
        join=_join_whatsapp,
        mark=lambda w: len(w.bench.waha.sent),
        received=lambda w, since: [
            str(m.get("text")) for m in w.bench.waha.sent[since:] if m["chatId"] == ANNA
        ],
    ),
}


async def notice(w: World, client: Client, amount: int, key: str) -> None:
    """A visit's bonus, told after commit as the inbox worker tells it."""
    result = await ledger.accrue(client.id, amount, key)
    await notify_committed(w.bench.client.app[NOTIFIER], [result])
    await idle(w.bench)


@pytest.mark.parametrize("fallback", sorted(SIDES))
async def test_a_blocked_telegram_chat_makes_the_bonus_notice_arrive_on_the_next_channel(
    aiohttp_client: ClientFactory, settings: Settings, fallback: str
) -> None:
    side = SIDES[fallback]
    async with world(aiohttp_client, settings, 941) as w:
        # The other channel first, then Telegram: one card either way, Telegram used last.
        await side.join(w)
        await join_telegram(w)
        assert await Client.filter(company_id=w.company.id).count() == 1
        client = await Client.get(company_id=w.company.id, telegram_user_id=ANNA_TG.id)
        assert client.last_channel == "telegram"

        w.telegram.blocked_chats.add(ANNA_TG.id)
        tg_mark, other_mark = len(w.telegram.calls), side.mark(w)
        await notice(w, client, 150, "visit:1")
        # Tried in Telegram once (refused), delivered on the other channel once.
        assert len(tg_sends_to(w, ANNA_TG, tg_mark)) == 1
        got = side.received(w, other_mark)
        assert len(got) == 1 and "Начислено бонусов: 150" in got[0]
        assert set((await Client.get(id=client.id)).unreachable) == {"telegram"}

        # Remembered: the next notice does not knock on Telegram again.
        tg_mark, other_mark = len(w.telegram.calls), side.mark(w)
        await notice(w, await Client.get(id=client.id), 20, "visit:2")
        assert tg_sends_to(w, ANNA_TG, tg_mark) == []
        assert len(side.received(w, other_mark)) == 1

        # She unblocks the bot and writes there: Telegram is hers again.
        w.telegram.blocked_chats.clear()
        await tg_say(w, ANNA_TG, ANNA_TG.says("/balance"), "Ваш баланс: 170")
        assert (await Client.get(id=client.id)).unreachable == {}
        tg_mark, other_mark = len(w.telegram.calls), side.mark(w)
        await notice(w, await Client.get(id=client.id), 30, "visit:3")
        assert len(tg_sends_to(w, ANNA_TG, tg_mark)) == 1
        assert side.received(w, other_mark) == []


async def test_one_client_reached_from_telegram_and_whatsapp_sees_one_balance(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with world(aiohttp_client, settings, 942) as w:
        await join_telegram(w)
        client = await Client.get(company_id=w.company.id, telegram_user_id=ANNA_TG.id)
        await ledger.accrue(client.id, 240, "seed")
        # WhatsApp vouches for the sender's number: the same card, balance, code and history.
        sent = await say(w.bench, w.session, ANNA, "2")
        assert "Ваш баланс: 240 бонусов." in texts(sent)
        sent = await say(w.bench, w.session, ANNA, "3")
        assert codes.display(client.code) in texts(sent)
        await tg_say(w, ANNA_TG, ANNA_TG.says("/balance"), "Ваш баланс: 240")
        assert await Client.filter(company_id=w.company.id).count() == 1
        # A number someone merely types opens nobody's balance.
        stranger = "79990000001@c.us"
        sent = await say(w.bench, w.session, stranger, f"+{ANNA_PHONE}")
        assert "240" not in texts(sent)
        assert await Client.filter(company_id=w.company.id).count() == 2


# --- a person behind the bot ------------------------------------------------------------------


async def admin(w: World, **fields: Any) -> Staff:
    return await Staff.create(company=w.company, role=StaffRole.ADMIN, name="Ирина", **fields)


async def test_a_whatsapp_clients_question_reaches_the_admin_and_the_reply_comes_back(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with world(aiohttp_client, settings, 943) as w:
        await admin(w, telegram_user_id=ADMIN_TG.id)
        calls = len(w.telegram.calls)
        sent = await say(w.bench, w.session, ANNA, "Можно перенести запись на пятницу?")
        assert "передано администратору" in texts(sent)
        assert "Не понял" not in texts(sent)
        question = await w.telegram.wait_for(
            "sendMessage", to(ADMIN_TG, "перенести запись на пятницу"), after=calls
        )
        text = question.params["text"]
        assert f"+{ANNA_PHONE}" in text and "WhatsApp" in text
        message_id = int(
            (await AdminRelay.get(channel="telegram", chat=str(ADMIN_TG.id))).message_id
        )

        mark = len(w.bench.waha.sent)
        reply = "Да, конечно! Ждём вас в пятницу в 15:00."
        await tg_say(w, ADMIN_TG, ADMIN_TG.replies_to(message_id, reply), "доставлен")
        await idle(w.bench)
        got = [m for m in w.bench.waha.sent[mark:] if m["chatId"] == ANNA]
        assert len(got) == 1 and reply in got[0]["text"] and "Салон Ромашка" in got[0]["text"]

        # Menu words and numbers keep working, and are not passed on.
        calls = len(w.telegram.calls)
        sent = await say(w.bench, w.session, ANNA, "Баланс")
        assert "Ваш баланс" in texts(sent)
        sent = await say(w.bench, w.session, ANNA, "ок")
        assert tg_sends_to(w, ADMIN_TG, calls) == []

        # A photo is passed on as "a photo", with where to see it.
        await say(w.bench, w.session, ANNA, "", has_media=True)
        photo = await w.telegram.wait_for("sendMessage", to(ADMIN_TG, "фото"), after=calls)
        assert "WhatsApp салона" in photo.params["text"]


async def test_a_telegram_clients_question_and_the_admins_whatsapp_reply(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with world(aiohttp_client, settings, 944) as w:
        # The admin is known by phone only: questions reach them on the salon's WhatsApp.
        await admin(w, phone="+79995550000")
        admin_chat = "79995550000@c.us"
        await join_telegram(w)
        mark = len(w.bench.waha.sent)
        await tg_say(
            w, ANNA_TG, ANNA_TG.says("Сколько стоит окрашивание?"), "передано администратору"
        )
        await idle(w.bench)
        (question,) = [m for m in w.bench.waha.sent[mark:] if m["chatId"] == admin_chat]
        assert "Сколько стоит окрашивание?" in question["text"] and "Telegram" in question["text"]

        calls = len(w.telegram.calls)
        sent = await say(
            w.bench, w.session, admin_chat, "От 3000 ₽, зависит от длины.", reply_to=question["id"]
        )
        assert "доставлен" in texts(sent)
        await w.telegram.wait_for("sendMessage", to(ANNA_TG, "От 3000 ₽"), after=calls)

        # The explicit form works too (and the console reads it the same way).
        client = await Client.get(company_id=w.company.id, telegram_user_id=ANNA_TG.id)
        calls = len(w.telegram.calls)
        sent = await say(w.bench, w.session, admin_chat, f"ответ {client.code} Ждём вас!")
        assert "доставлен" in texts(sent)
        await w.telegram.wait_for("sendMessage", to(ANNA_TG, "Ждём вас!"), after=calls)

        # A voice note from Telegram reaches the admin as what it is.
        mark = len(w.bench.waha.sent)
        await tg_say(w, ANNA_TG, ANNA_TG.sends_voice(), "передано администратору")
        await idle(w.bench)
        (voice,) = [m for m in w.bench.waha.sent[mark:] if m["chatId"] == admin_chat]
        assert "голосовое сообщение в Telegram" in voice["text"]


async def test_a_reply_from_someone_who_is_not_staff_reaches_nobody(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with world(aiohttp_client, settings, 945) as w:
        irina = await admin(w, telegram_user_id=ADMIN_TG.id)
        calls = len(w.telegram.calls)
        await say(w.bench, w.session, ANNA, "Подскажите, есть ли парковка?")
        await w.telegram.wait_for("sendMessage", to(ADMIN_TG, "парковка"), after=calls)
        relay = await AdminRelay.get(channel="telegram", chat=str(ADMIN_TG.id))

        # Removed from the staff since: the reply goes nowhere.
        await Staff.filter(id=irina.id).update(active=False)
        mark = len(w.bench.waha.sent)
        update = ADMIN_TG.replies_to(int(relay.message_id), "Есть, во дворе")
        await tg_say(w, ADMIN_TG, update, "Отвечать клиентам могут только администраторы")
        # A stranger "replying" to the same message id in their own chat: no such question.
        calls = len(w.telegram.calls)
        w.telegram.push(NOT_STAFF_TG.replies_to(int(relay.message_id), "Есть, во дворе"))
        await w.telegram.wait_for("sendMessage", to(NOT_STAFF_TG, ""), after=calls)
        await idle(w.bench)
        assert [m for m in w.bench.waha.sent[mark:] if m["chatId"] == ANNA] == []
        # Nor does «ответ CODE text» from a person who is not staff.
        client = await Client.get(company_id=w.company.id, whatsapp_chat_id=ANNA)
        stranger = "79990000002@c.us"
        await say(w.bench, w.session, stranger, f"ответ {client.code} привет")
        assert [m for m in w.bench.waha.sent[mark:] if m["chatId"] == ANNA] == []
