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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from core import clients
from core.i18n import pick_locale
from core.models import Client, Company, Staff, StaffRole
from core.whatsapp.ids import chat_id_for_phone

if TYPE_CHECKING:
    # Only named in types: the dialog imports this module (bot.dialog.questions).
    from bot.dialog.replies import Reply

log = logging.getLogger(__name__)


class Delivery(StrEnum):
    SENT = "sent"
    # Temporary (flood control, network, a 5xx): the same channel may work a bit later.
    RETRY = "retry"
    # For good on this channel (blocked bot, no such chat, session gone): try another.
    GONE = "gone"
    # This channel does not know the person, or is off for the salon.
    NO_CHAT = "no_chat"


# Where each chat channel keeps a person's address on the client card: a new channel (MAX)
# adds its line here, and `Recipient.of_client` and the fallback know it.
CLIENT_ADDRESSES: dict[str, str] = {
    "telegram": "telegram_user_id",
    "whatsapp": "whatsapp_chat_id",
    "max": "max_user_id",
}


@dataclass(slots=True)
class SendNote:
    """What a channel says about one send besides its `Delivery`: how long flood control asks
    to wait (RETRY), and the ids of the messages it sent (an admin's reply to one of them is
    routed back by it). A channel writes it with `note_retry_after` / `note_sent`."""

    retry_after: float | None = None
    message_ids: list[str] = field(default_factory=list)


_NOTE: ContextVar[SendNote | None] = ContextVar("outbound_send_note", default=None)


def note_retry_after(seconds: float) -> None:
    note = _NOTE.get()
    if note is not None:
        note.retry_after = seconds


def note_sent(message_id: str) -> None:
    note = _NOTE.get()
    if note is not None:
        note.message_ids.append(message_id)


def retry_after() -> float | None:
    """After a RETRY in this task: the wait the channel asked for (Telegram's flood control),
    or None when it named none. A dispatcher waits at least this long before trying again."""
    note = _NOTE.get()
    return None if note is None else note.retry_after


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
        for channel, attribute in CLIENT_ADDRESSES.items():
            value = getattr(client, attribute, None)
            if value is not None and value != "":
                addresses[channel] = str(value)
        gone = set(client.unreachable or {})
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
Compose = Callable[[str], "Sequence[Reply]"]


@dataclass(frozen=True, slots=True)
class Sent:
    """Where a message went: the channel that took it and the ids of what it sent there."""

    to: Recipient
    channel: str
    message_ids: tuple[str, ...]


# Told of every admin notice that went out (to record what an admin may reply to).
OnSent = Callable[[Sent], Awaitable[None]]


class Outbound:
    def __init__(self, channels: Mapping[str, ClientChannel] | None = None) -> None:
        self.channels: dict[str, ClientChannel] = dict(channels or {})

    def add(self, channel: ClientChannel) -> None:
        self.channels[channel.name] = channel

    def remove(self, name: str) -> None:
        self.channels.pop(name, None)

    async def send(
        self,
        to: Recipient,
        company: Company,
        compose: Compose,
        *,
        on_sent: OnSent | None = None,
    ) -> tuple[Delivery, str | None]:
        """Try `to`'s channels in order; returns the outcome and the channel that took it.
        RETRY stops the walk: the message waits for that channel rather than jumping ahead
        (`retry_after()` then says how long the channel asked to wait)."""
        outcome = Delivery.NO_CHAT
        replies = compose(to.locale)
        for name in to.order(list(self.channels)):
            note = SendNote()
            _NOTE.set(note)
            try:
                result = await self.channels[name].send(to, company, replies)
            except Exception:
                log.exception("sending on %s failed", name)
                result = Delivery.RETRY
            if result is Delivery.SENT:
                if on_sent is not None:
                    await on_sent(Sent(to, name, tuple(note.message_ids)))
                return result, name
            if result is Delivery.RETRY:
                return result, name
            if result is Delivery.GONE:
                outcome = Delivery.GONE
                if to.client_id is not None:
                    await mark_gone(to.client_id, name)
        return outcome, None

    async def to_client(self, client: Client, compose: Compose) -> Delivery:
        outcome, _channel = await self.client_send(client, compose)
        return outcome

    async def client_send(
        self, client: Client, compose: Compose, company: Company | None = None
    ) -> tuple[Delivery, str | None]:
        """`to_client` that also says which channel took the message."""
        if client.messages_off:
            return Delivery.NO_CHAT, None
        company = company or await Company.get(id=client.company_id)
        return await self.send(Recipient.of_client(client, company), company, compose)

    async def to_admins(
        self, company_id: int, compose: Compose, *, on_sent: OnSent | None = None
    ) -> int:
        """Tell every active admin of the salon; returns how many were reached. A salon
        without an admin tells its active staff instead (someone must hear of it).
        `on_sent` hears of each message that went out (what an admin may reply to)."""
        company = await Company.get(id=company_id)
        staff = await Staff.filter(company_id=company_id, active=True).order_by("id")
        admins = [person for person in staff if person.role is StaffRole.ADMIN] or staff
        reached = 0
        for admin in admins:
            outcome, _channel = await self.send(
                Recipient.of_staff(admin, company), company, compose, on_sent=on_sent
            )
            reached += outcome is Delivery.SENT
        return reached


async def mark_gone(client_id: int, channel: str) -> None:
    """Remember that `channel` failed for good for this client (cleared when they write there
    again, core.clients.remember_channel)."""
    await clients.mark_unreachable(client_id, channel, datetime.now(UTC))


async def gone_for(channel: str, **identity: Any) -> None:
    """The person behind `identity` (telegram_user_id=…) cannot be reached on `channel` for
    now, in every salon (they blocked the bot): told before a send has to find it out."""
    now = datetime.now(UTC)
    for client in await Client.filter(**identity).only("id"):
        await clients.mark_unreachable(client.id, channel, now)


async def back_on(channel: str, **identity: Any) -> None:
    """They can be reached on `channel` again (they unblocked the bot)."""
    await clients.mark_reachable(channel, **identity)
