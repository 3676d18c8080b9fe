"""Issue 10, medium 2, the WhatsApp side: the webhook stores a message once (deduped by its
message id), but the inbox hands a stored event over again when handling it failed or the
process died before marking it done. A staff member's `списать CODE 500` or «да» handed over
twice must debit once: the redeem's key derives from the WhatsApp message, not from a random
token made per run. Both databases."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.dialog import WHATSAPP, Dialog, Session
from bot.whatsapp.channel import WhatsAppBot
from bot.whatsapp.outbox import Manners, Outbox
from core.models import Client, Company, LedgerEntry, LedgerKind, Staff, WhatsAppChat
from core.notifications import LoggingNotifier
from tests.bot.conftest import client_with_balance, make_salon
from tests.bot.test_whatsapp import RecordingGateway

SESSION = "salon-555"
STAFF_CHAT = "79995550000@c.us"
_ids = itertools.count(1)


class Chat:
    def __init__(self, channel: WhatsAppBot, gateway: RecordingGateway) -> None:
        self.channel = channel
        self.gateway = gateway

    def message(self, text: str) -> dict[str, Any]:
        """A stored `message` event from the staff member's number, as the inbox holds it."""
        return {
            "event": "message",
            "session": SESSION,
            "payload": {
                "id": f"false_{STAFF_CHAT}_3EB0{next(_ids):016X}",
                "from": STAFF_CHAT,
                "fromMe": False,
                "body": text,
                "hasMedia": False,
                "_data": {"pushName": "Ольга"},
            },
        }

    async def hand_over(self, event: dict[str, Any]) -> str:
        """The inbox hands the event to the channel; the text sent back."""
        start = len(self.gateway.calls)
        await self.channel.handle(event)
        await self.channel.outbox.idle()
        return "\n".join(str(c[2]) for c in self.gateway.calls[start:] if c[0] == "text")

    async def says(self, text: str) -> str:
        return await self.hand_over(self.message(text))


@pytest.fixture
async def chat(orm: str) -> AsyncIterator[Chat]:
    gateway = RecordingGateway()
    outbox = Outbox(gateway, Manners(pause=0.0, rate=0))  # type: ignore[arg-type]
    channel = WhatsAppBot(gateway, outbox, Dialog(LoggingNotifier()))  # type: ignore[arg-type]
    yield Chat(channel, gateway)
    await outbox.close()


async def salon_with_staff() -> Company:
    company = await make_salon()
    await Company.filter(id=company.id).update(whatsapp_session=SESSION)
    await Staff.create(company=company, phone="+79995550000", name="Ольга")
    return await Company.get(id=company.id)


async def debits(client: Client) -> list[int]:
    return list(
        await LedgerEntry.filter(client_id=client.id, kind=LedgerKind.REDEMPTION).values_list(
            "amount", flat=True
        )
    )


async def test_a_redeem_request_handed_over_again_after_yes_debits_once(chat: Chat) -> None:
    company = await salon_with_staff()
    client = await client_with_balance(company, "+79991234567", 800)
    request = chat.message(f"списать {client.code} 500")
    assert "Ответьте «да»" in await chat.hand_over(request)
    assert "Новый баланс: 300" in await chat.says("да")

    # The request handed over again (its first handling was not marked done): it must not ask
    # for a confirmation a second «да» would turn into a second debit.
    again = await chat.hand_over(request)
    assert "Уже списано бонусов: 500" in again and "Ответьте «да»" not in again
    await chat.says("да")
    assert await debits(client) == [-500]
    assert (await Client.get(id=client.id)).balance == 300
    # The key is the message's, the same on every replica and after a restart.
    key = await LedgerEntry.filter(kind=LedgerKind.REDEMPTION).values_list(
        "idempotency_key", flat=True
    )
    ref = f"wa:{SESSION}:{request['payload']['id']}"
    assert key == [f"redeem:{Session(WHATSAPP, {}, message_ref=ref).turn_token('redeem')}"]


async def test_a_yes_handed_over_again_before_its_turn_was_saved_debits_once(
    chat: Chat,
) -> None:
    company = await salon_with_staff()
    client = await client_with_balance(company, "+79991234567", 800)
    await chat.says(f"списать {client.code} 500")
    saved = await WhatsAppChat.get(chat_id=STAFF_CHAT)
    yes = chat.message("да")
    assert "Новый баланс: 300" in await chat.hand_over(yes)
    # The process died after the debit committed and before the chat's turn was saved: the
    # retry finds the request still pending.
    await WhatsAppChat.filter(id=saved.id).update(
        state=saved.state, data=saved.data, offered=saved.offered
    )
    assert "Уже списано бонусов: 500" in await chat.hand_over(yes)
    await chat.hand_over(yes)
    assert await debits(client) == [-500]
    assert (await Client.get(id=client.id)).balance == 300


async def test_the_step_by_step_redeem_handed_over_again_debits_once(chat: Chat) -> None:
    company = await salon_with_staff()
    client = await client_with_balance(company, "+79991234567", 800)
    await chat.says("списать")
    code = chat.message(client.code)
    await chat.hand_over(code)
    amount = chat.message("200")
    assert "Ответьте «да»" in await chat.hand_over(amount)
    await chat.says("да")
    for event in (code, amount):
        await chat.hand_over(event)
    await chat.says("да")
    assert await debits(client) == [-200]
    assert (await Client.get(id=client.id)).balance == 600
