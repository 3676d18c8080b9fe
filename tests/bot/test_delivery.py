"""bot.outbound with the real Telegram and WhatsApp channels: the order, the fallback, what is
remembered, and what is retried — over the recording Bot API session and a recording gateway."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.methods import SendMessage

from bot.dialog import Reply
from bot.dialog.actions import Balance, Visits
from bot.dialog.questions import looks_like_question
from bot.dialog.replies import Button, rows
from bot.notifier import RoutingNotifier
from bot.outbound import CLIENT_ADDRESSES, Delivery, Outbound, Recipient, retry_after
from bot.telegram.delivery import TelegramChannel
from bot.whatsapp.delivery import WhatsAppChannel
from bot.whatsapp.outbox import Manners, Outbox
from core import clients, ledger
from core.models import Client, Company, Staff, StaffRole, WhatsAppChat
from core.notifications import BalanceNotice, LoggingNotifier
from core.whatsapp import GatewayRequestError, SessionNotConnected
from tests.bot.conftest import make_salon
from tests.bot.test_whatsapp import RecordingGateway
from tests.fakes.telegram import RecordingSession, recording_bot

TG_ID = 4242
WA_CHAT = "79991234567@c.us"


class Gateway(RecordingGateway):
    """The recording gateway, refusing sends with `error` while it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Exception | None = None
        self.sent_id = 0

    async def send_text(
        self, session: str, chat_id: str, text: str, reply_to: str | None = None
    ) -> str:
        if self.error is not None:
            self.calls.append(("refused", chat_id, text))
            raise self.error
        await super().send_text(session, chat_id, text, reply_to)
        self.sent_id += 1
        return f"true_{chat_id}_{self.sent_id}"


class Rig:
    def __init__(self) -> None:
        self.bot, self.tg = recording_bot()
        self.gateway = Gateway()
        self.outbox = Outbox(self.gateway, Manners(pause=0, rate=0))  # type: ignore[arg-type]
        self.outbound = Outbound()
        self.outbound.add(TelegramChannel(self.bot))
        self.outbound.add(WhatsAppChannel(self.outbox))
        self.waits: list[float] = []

        async def sleep(seconds: float) -> None:
            self.waits.append(seconds)

        self.notifier = RoutingNotifier(self.outbound, LoggingNotifier(), sleep=sleep)

    def telegram_texts(self, since: int = 0) -> list[str]:
        return [m.text for m in self.tg.sent(since) if isinstance(m, SendMessage)]

    def whatsapp_texts(self) -> list[str]:
        return [text for kind, chat, text in self.gateway.calls if kind == "text"]


@pytest.fixture
async def rig(orm: str) -> Any:
    rig = Rig()
    yield rig
    await rig.outbox.close()
    await rig.bot.session.close()


async def salon() -> Company:
    company = await make_salon()
    company.whatsapp_session = "salon-555"
    await company.save(update_fields=["whatsapp_session"])
    return company


async def both(company: Company, last: str = "telegram") -> Client:
    made = await clients.create_client(
        company, phone="+79991234567", telegram_user_id=TG_ID, whatsapp_chat_id=WA_CHAT
    )
    await Client.filter(id=made.client.id).update(last_channel=last)
    return await Client.get(id=made.client.id)


async def tell(rig: Rig, client: Client, amount: int = 100) -> None:
    result = await ledger.accrue(client.id, amount, f"visit:{amount}")
    await rig.notifier.notify([BalanceNotice.from_result(result)])


def test_a_recipient_has_an_address_per_channel_the_card_knows() -> None:
    client = Client(id=1, company_id=1, telegram_user_id=7, whatsapp_chat_id=None, unreachable={})
    company = Company(id=1, default_locale="ru")
    to = Recipient.of_client(client, company)
    assert dict(to.addresses) == {"telegram": "7"}
    # A channel is one line in the registry (MAX adds `"max": "max_user_id"`).
    assert set(CLIENT_ADDRESSES) >= {"telegram", "whatsapp"}


async def test_the_last_channel_goes_first(rig: Rig) -> None:
    client = await both(await salon(), last="whatsapp")
    await tell(rig, client)
    await rig.outbox.idle()
    assert rig.telegram_texts() == []
    assert ["Начислено бонусов: 100" in t for t in rig.whatsapp_texts()] == [True]


async def test_flood_control_is_retried_on_the_same_channel_not_fallen_back(rig: Rig) -> None:
    client = await both(await salon())
    rig.tg.refusals.flooded[TG_ID] = (1, 3)
    await tell(rig, client)
    # Refused once, waited what Telegram asked, delivered on the second try; WhatsApp quiet.
    assert len(rig.telegram_texts()) == 2
    assert rig.waits == [3.0]
    assert rig.whatsapp_texts() == []
    assert (await Client.get(id=client.id)).unreachable == {}


async def test_a_retry_names_its_wait_and_is_handed_back_to_the_caller(rig: Rig) -> None:
    client = await both(await salon())
    rig.tg.refusals.flooded[TG_ID] = (5, 7)
    assert await rig.outbound.to_client(client, lambda _: [Reply("Напоминание")]) is Delivery.RETRY
    assert retry_after() == 7.0
    assert rig.whatsapp_texts() == []
    # A long wait is not sat out by the notice router: dropped after one try, not fallen back.
    rig.tg.refusals.flooded[TG_ID] = (5, 60)
    await tell(rig, client)
    assert rig.waits == [] and rig.whatsapp_texts() == []


async def test_a_chat_that_is_not_there_falls_back_and_is_remembered(rig: Rig) -> None:
    client = await both(await salon())
    rig.tg.refusals.missing.add(TG_ID)
    await tell(rig, client)
    await rig.outbox.idle()
    assert len(rig.whatsapp_texts()) == 1
    assert set((await Client.get(id=client.id)).unreachable) == {"telegram"}
    # Writing in Telegram again (core.clients.remember_channel) clears it.
    fresh = await Client.get(id=client.id)
    await clients.remember_channel(fresh, "telegram")
    assert (await Client.get(id=client.id)).unreachable == {}


async def test_a_salon_whose_whatsapp_is_unlinked_falls_back_without_blaming_the_client(
    rig: Rig,
) -> None:
    client = await both(await salon(), last="whatsapp")
    rig.gateway.error = SessionNotConnected("sendText: 422 session is not WORKING")
    await tell(rig, client)
    assert ["Начислено бонусов: 100" in t for t in rig.telegram_texts()] == [True]
    # Once the salon links its number again, WhatsApp is the client's channel as before.
    assert (await Client.get(id=client.id)).unreachable == {}


async def test_whatsapp_refusing_the_chat_itself_is_gone(rig: Rig) -> None:
    client = await both(await salon(), last="whatsapp")
    rig.gateway.error = GatewayRequestError("sendText: 400 invalid chatId", 400)
    await tell(rig, client)
    assert len(rig.telegram_texts()) == 1
    assert set((await Client.get(id=client.id)).unreachable) == {"whatsapp"}


async def test_nothing_is_sent_to_a_client_who_said_stop_or_has_no_chat(rig: Rig) -> None:
    company = await salon()
    client = await both(company)
    await Client.filter(id=client.id).update(messages_off=True)
    quiet = await Client.get(id=client.id)
    assert await rig.outbound.to_client(quiet, lambda _: [Reply("x")]) is Delivery.NO_CHAT
    only_yclients = (await clients.create_client(company, phone="+79990000000")).client
    assert await rig.outbound.to_client(only_yclients, lambda _: [Reply("x")]) is Delivery.NO_CHAT
    assert rig.telegram_texts() == [] and rig.whatsapp_texts() == []


async def test_numbered_choices_of_a_proactive_whatsapp_message_can_be_answered(
    rig: Rig,
) -> None:
    company = await salon()
    client = await both(company, last="whatsapp")
    buttons = rows(Button("Баланс", action=Balance()), Button("Визиты", action=Visits()))
    sent = await rig.outbound.to_client(client, lambda _: [Reply("Что показать?", buttons)])
    assert sent is Delivery.SENT
    assert "1 — Баланс" in rig.whatsapp_texts()[0]
    chat = await WhatsAppChat.get(company_id=company.id, chat_id=WA_CHAT)
    assert chat.offered == {"options": [Balance().pack(), Visits().pack()]}


async def test_admins_are_told_else_all_staff(rig: Rig) -> None:
    company = await salon()
    await Staff.create(company=company, telegram_user_id=11)
    await Staff.create(company=company, phone="+79995550000")
    compose = lambda _: [Reply("WhatsApp салона не работает")]  # noqa: E731
    # No admin: every active staff member hears it (the second one on the salon's WhatsApp).
    assert await rig.outbound.to_admins(company.id, compose) == 2
    await rig.outbox.idle()
    assert rig.telegram_texts() == ["WhatsApp салона не работает"]
    (whatsapp,) = rig.whatsapp_texts()
    assert whatsapp.startswith("WhatsApp салона не работает")
    await Staff.create(company=company, telegram_user_id=12, role=StaffRole.ADMIN)
    await Staff.create(company=company, telegram_user_id=13, role=StaffRole.ADMIN, active=False)
    start = len(rig.tg.requests)
    assert await rig.outbound.to_admins(company.id, compose) == 1
    assert [m.chat_id for m in rig.tg.sent(start) if isinstance(m, SendMessage)] == [12]


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("Можно перенести запись на пятницу?", True),
        ("Сколько стоит?", True),
        ("парковка?", True),
        ("есть парковка", True),
        ("12", False),
        ("ок", False),
        ("👍", False),
        ("?", False),
    ],
)
def test_what_reads_as_a_question_for_a_person(text: str, question: bool) -> None:
    assert looks_like_question(text) is question


async def test_the_telegram_channel_says_no_chat_without_an_address(orm: str) -> None:
    bot, session = recording_bot()
    channel = TelegramChannel(bot)
    company = await salon()
    to = Recipient(company_id=company.id, locale="ru", addresses={"whatsapp": WA_CHAT})
    assert await channel.send(to, company, [Reply("x")]) is Delivery.NO_CHAT
    assert isinstance(session, RecordingSession) and session.requests == []
    await bot.session.close()
