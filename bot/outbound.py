"""Messages nobody just asked for — notices, reminders, questions, alerts to the salon's admins,
an admin's answer — sent to a person on the channel they use, with a fallback.

Each chat channel (Telegram, WhatsApp, MAX, the demo's web chat) is a `ClientChannel` that sends
dialog `Reply`s to a `Recipient` and says how it went (`Delivery`). `Outbound` picks the channel:
the one the person used last, then every other channel that knows them. A failure for good on
a channel (the bot was blocked, the chat is gone) is remembered on the client and the next
channel is tried; a temporary one (flood control, a network error) is handed back to the caller,
who tries the same channel again later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from bot.dialog.replies import Reply
from core.i18n import pick_locale
from core.models import Client, Company, Staff, StaffRole
from core.whatsapp.ids import chat_id_for_phone

log = logging.getLogger(__name__)


class Delivery(StrEnum):
    SENT = "sent"
    # Temporary (flood control, network, a 5xx): the same channel may work a bit later.
    RETRY = "retry"
    # For good on this channel (blocked bot, no such chat, session gone): try another.
    GONE = "gone"
    # This channel does not know the person, or is off for the salon.
    NO_CHAT = "no_chat"


@dataclass(frozen=True, slots=True)
class Recipient:
    company_id: int
    locale: str
    # Channel name -> the person's address there (a Telegram user id, a WhatsApp chat id, …).
    addresses: Mapping[str, str]
    last_channel: str | None = None
    # Channels known to have failed for good.
    gone: frozenset[str] = field(default_factory=frozenset)
    client_id: int | None = None
    staff_id: int | None = None
    name: str = ""

    @classmethod
    def of_client(cls, client: Client, company: Company) -> Recipient:
        addresses: dict[str, str] = {}
        if client.telegram_user_id is not None:
            addresses["telegram"] = str(client.telegram_user_id)
        if client.whatsapp_chat_id:
            addresses["whatsapp"] = client.whatsapp_chat_id
        if client.last_channel == "web" and client.phone:
            # The demo's web chat knows its people by phone (bot.webchat).
            addresses["web"] = client.phone
        gone = set(client.unreachable or {})
        if client.telegram_unreachable_at is not None:
            gone.add("telegram")
        return cls(
            company_id=company.id,
            locale=pick_locale(client.locale, company.default_locale),
            addresses=addresses,
            last_channel=client.last_channel,
            gone=frozenset(gone),
            client_id=client.id,
            name=client.name,
        )

    @classmethod
    def of_staff(cls, staff: Staff, company: Company) -> Recipient:
        addresses: dict[str, str] = {}
        if staff.telegram_user_id is not None:
            addresses["telegram"] = str(staff.telegram_user_id)
        if staff.phone:
            addresses["whatsapp"] = chat_id_for_phone(staff.phone)
            # Only the demo registers a web chat; there staff are known by phone too.
            addresses["web"] = staff.phone
        return cls(
            company_id=company.id,
            locale=company.default_locale,
            addresses=addresses,
            staff_id=staff.id,
            name=staff.name,
        )

    def order(self, names: Sequence[str]) -> list[str]:
        """The channels to try, in order: the last one used first, then the rest as given;
        only channels that know the person and have not failed for good."""
        ranked = sorted(names, key=lambda name: name != self.last_channel)
        return [n for n in ranked if n in self.addresses and n not in self.gone]


class ClientChannel(Protocol):
    name: str

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        """Send `replies` to `to` (who has an address on this channel); never raises for a
        delivery failure, it says which kind it was."""


# The replies in a locale: a message is composed in the language of whoever receives it.
Compose = Callable[[str], Sequence[Reply]]


class Outbound:
    def __init__(self, channels: Mapping[str, ClientChannel] | None = None) -> None:
        self.channels: dict[str, ClientChannel] = dict(channels or {})

    def add(self, channel: ClientChannel) -> None:
        self.channels[channel.name] = channel

    def remove(self, name: str) -> None:
        self.channels.pop(name, None)

    async def send(
        self, to: Recipient, company: Company, compose: Compose
    ) -> tuple[Delivery, str | None]:
        """Try `to`'s channels in order; returns the outcome and the channel that took it.
        RETRY stops the walk: the message waits for that channel rather than jumping ahead."""
        outcome = Delivery.NO_CHAT
        replies = compose(to.locale)
        for name in to.order(list(self.channels)):
            try:
                result = await self.channels[name].send(to, company, replies)
            except Exception:
                log.exception("sending on %s failed", name)
                result = Delivery.RETRY
            if result is Delivery.SENT or result is Delivery.RETRY:
                return result, name
            if result is Delivery.GONE:
                outcome = Delivery.GONE
                if to.client_id is not None:
                    await mark_gone(to.client_id, name)
        return outcome, None

    async def to_client(self, client: Client, compose: Compose) -> Delivery:
        company = await Company.get(id=client.company_id)
        if client.messages_off:
            return Delivery.NO_CHAT
        outcome, _channel = await self.send(Recipient.of_client(client, company), company, compose)
        return outcome

    async def to_admins(self, company_id: int, compose: Compose) -> int:
        """Tell every active admin of the salon; returns how many were reached."""
        company = await Company.get(id=company_id)
        admins = await Staff.filter(company_id=company_id, active=True, role=StaffRole.ADMIN)
        reached = 0
        for admin in admins:
            outcome, _channel = await self.send(
                Recipient.of_staff(admin, company), company, compose
            )
            reached += outcome is Delivery.SENT
        return reached


async def mark_gone(client_id: int, channel: str) -> None:
    """Remember that `channel` failed for good for this client (cleared when they write there
    again, core.clients.remember_channel)."""
    client = await Client.get_or_none(id=client_id)
    if client is None:
        return
    unreachable = dict(client.unreachable or {})
    unreachable[channel] = datetime.now(UTC).isoformat()
    await Client.filter(id=client_id).update(unreachable=unreachable)
