"""Client linking in one place (core.clients): the chat channels tie themselves to the salon's
client card here, and "last channel used" is written here."""

from __future__ import annotations

from core import clients
from core.models import Client, Company, LedgerEntry
from tests.bot.conftest import make_salon

CHAT = "123456789@lid"


async def test_a_hidden_number_gets_its_own_card_then_steps_aside_for_the_phone_owner(
    orm: str,
) -> None:
    salon: Company = await make_salon(welcome_bonus=100)
    synced = (await clients.create_client(salon, phone="+79991234567", welcome=False)).client

    hidden = await clients.link_chat(
        salon, whatsapp_chat_id=CHAT, phone=None, current=None, channel="whatsapp"
    )
    card = hidden.client
    assert card is not None and hidden.created and hidden.welcome is None
    assert card.phone is None and card.balance == 0 and card.last_channel == "whatsapp"

    # The same chat again, still hidden: nothing changes.
    again = await clients.link_chat(
        salon, whatsapp_chat_id=CHAT, phone=None, current=card, channel="whatsapp"
    )
    assert again.client is card and not again.created and again.returning

    # The number is known now: the untouched card steps aside for the synced one, which
    # earns the welcome bonus once.
    known = await clients.link_chat(
        salon, whatsapp_chat_id=CHAT, phone="+79991234567", current=card, channel="whatsapp"
    )
    assert known.client is not None and known.client.id == synced.id
    assert known.welcome is not None and known.welcome.balance == 100
    assert not known.created and known.returning
    assert (await Client.get(id=card.id)).whatsapp_chat_id is None
    joined = await Client.get(id=synced.id)
    assert joined.whatsapp_chat_id == CHAT and joined.last_channel == "whatsapp"
    assert await LedgerEntry.filter(client_id=synced.id).count() == 1


async def test_a_sync_made_card_is_new_to_the_chat_and_remember_channel_writes_once(
    orm: str,
) -> None:
    salon = await make_salon()
    synced = (await clients.create_client(salon, phone="+79991234567", welcome=False)).client
    assert not clients.has_written(synced)
    linked = await clients.link_chat(
        salon,
        whatsapp_chat_id="79991234567@c.us",
        phone="+79991234567",
        current=None,
        channel="whatsapp",
    )
    assert linked.client is not None and linked.client.id == synced.id
    assert not linked.created and not linked.returning
    assert clients.has_written(linked.client)

    await clients.remember_channel(linked.client, "telegram")
    assert (await Client.get(id=synced.id)).last_channel == "telegram"
