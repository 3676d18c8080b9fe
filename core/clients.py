"""Creating, finding and linking clients: one client card per salon and phone, reached from
every chat channel the person used.

Every client gets a unique code when it is created. A chat channel ties itself to the card
here and nowhere else: `join_by_phone` (a phone the channel verified: Telegram's contact of the
sender's own), `link_chat` (a channel that knows the sender's number without asking, WhatsApp,
or has to make do without it, a hidden `@lid` sender), `client_by_phone` (the console's trusted
phone), and `remember_channel` (where balance notices go: the channel used last).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core import codes, ledger
from core.models import Client, Company, LedgerEntry
from core.phones import mask_chat_id, mask_phone

log = logging.getLogger(__name__)

_CODE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class NewClient:
    client: Client
    # The welcome bonus entry, for the caller to tell the client about after commit.
    welcome: ledger.LedgerResult | None


async def create_client(
    company: Company,
    *,
    phone: str | None = None,
    name: str = "",
    email: str | None = None,
    yclients_client_id: int | None = None,
    telegram_user_id: int | None = None,
    whatsapp_chat_id: str | None = None,
    max_user_id: int | None = None,
    locale: str | None = None,
    welcome: bool = True,
) -> NewClient:
    """Create a client with a fresh code, and the company's welcome bonus when `welcome`
    (a client who joins the bot; not one merely seen in a YClients record).

    `phone` must already be normalised (core.phones) and verified by the caller.
    """
    for attempt in range(_CODE_ATTEMPTS):
        code = codes.generate()
        try:
            client = await Client.create(
                company=company,
                phone=phone,
                name=name,
                email=email,
                yclients_client_id=yclients_client_id,
                telegram_user_id=telegram_user_id,
                whatsapp_chat_id=whatsapp_chat_id,
                max_user_id=max_user_id,
                locale=locale,
                code=code,
            )
            break
        except IntegrityError:
            # 32^8 codes make a collision rare; anything else (same phone) is the caller's.
            if attempt == _CODE_ATTEMPTS - 1 or not await Client.exists(code=code):
                raise
    bonus = None
    if welcome and company.welcome_bonus > 0:
        bonus = await ledger.welcome(client.id, company.welcome_bonus, f"welcome:{client.id}")
        client.balance = bonus.balance
    return NewClient(client, bonus)


async def find_by_code(company_id: int, text: str) -> Client | None:
    """The company's client with this code; a malformed code or another salon's is None."""
    code = codes.parse(text)
    if code is None:
        return None
    return await Client.get_or_none(company_id=company_id, code=code)


class PhoneTaken(Exception):
    """The chat already belongs to one client of the salon and the phone to another."""


@dataclass(frozen=True, slots=True)
class JoinedClient:
    client: Client
    created: bool
    # The welcome bonus when this join earned it (once per client, ever).
    welcome: ledger.LedgerResult | None


async def join_by_phone(
    company: Company,
    phone: str,
    *,
    telegram_user_id: int | None = None,
    whatsapp_chat_id: str | None = None,
    max_user_id: int | None = None,
    name: str = "",
    locale: str | None = None,
) -> JoinedClient:
    """A person proved through a chat channel that `phone` (normalised) is theirs: tie the
    channel's id (Telegram user id, WhatsApp chat id) to the salon's client with that
    phone — one the YClients sync created included — rather than creating a second one.

    Only a phone the channel verified belongs here (a Telegram contact of the sender's own);
    a typed phone never opens an existing client's balance. The welcome bonus is given the
    first time a client joins a chat, whichever channel (its key is per client). MAX vouches
    for a phone with a contact whose hash verifies and which is the sender's own (bot.max)."""
    link: dict[str, Any] = {
        name_: value
        for name_, value in (
            ("telegram_user_id", telegram_user_id),
            ("whatsapp_chat_id", whatsapp_chat_id),
            ("max_user_id", max_user_id),
        )
        if value is not None
    }
    if not link:
        raise ValueError("join_by_phone needs the channel's id of the person")
    for attempt in range(2):
        try:
            return await _join(company, phone, link, name, locale)
        except IntegrityError:
            # A concurrent join or sync created the row meanwhile: the second pass finds it.
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _join(
    company: Company, phone: str, link: dict[str, Any], name: str, locale: str | None
) -> JoinedClient:
    mine = await Client.get_or_none(company_id=company.id, **link)
    owner = await Client.get_or_none(company_id=company.id, phone=phone)
    if mine is not None and owner is not None and mine.id != owner.id:
        raise PhoneTaken(phone)
    client = mine or owner
    if client is None:
        new = await create_client(company, phone=phone, name=name[:255], locale=locale, **link)
        return JoinedClient(new.client, True, new.welcome)
    changed: list[str] = []
    if client.phone != phone:
        # The chat's client changed their number (Telegram vouches for the new one).
        client.phone = phone
        changed.append("phone")
    for field_name, value in link.items():
        if getattr(client, field_name) != value:
            # The number's current owner is this account now.
            setattr(client, field_name, value)
            changed.append(field_name)
    if not client.name and name:
        client.name = name[:255]
        changed.append("name")
    if client.locale is None and locale:
        client.locale = locale
        changed.append("locale")
    if changed:
        await client.save(update_fields=changed)
    bonus = None
    if company.welcome_bonus > 0:
        result = await ledger.welcome(client.id, company.welcome_bonus, f"welcome:{client.id}")
        if result.created:
            bonus = result
            client.balance = result.balance
    return JoinedClient(client, False, bonus)


async def client_by_phone(company: Company, phone: str, *, name: str = "") -> JoinedClient:
    """The salon's client with this (trusted, normalised) phone, or a new one with the welcome
    bonus; no chat is tied to it (the console)."""
    client = await Client.get_or_none(company_id=company.id, phone=phone)
    if client is not None:
        return JoinedClient(client, False, None)
    new = await create_client(company, phone=phone, name=name)
    return JoinedClient(new.client, True, new.welcome)


def has_written(client: Client) -> bool:
    """Whether this client has talked to the bot before, read off what the chat channels
    write on the card: a Telegram user id or a WhatsApp chat id is tied to it only when the
    person joins a chat, and `last_channel` is set by every turn in a remembered channel. A
    card the YClients sync created (from a record) has none of them, so its first contact is
    greeted as a first one, not "welcome back". Linking writes them, so it is asked before
    (link_chat does)."""
    return (
        client.telegram_user_id is not None
        or client.whatsapp_chat_id is not None
        or client.max_user_id is not None
        or client.last_channel is not None
    )


async def remember_channel(client: Client, channel: str) -> None:
    """Messages follow the client to the chat channel they used last; writing there again
    also clears what said it failed for good (they unblocked the bot, the chat is back)."""
    changes: dict[str, Any] = {}
    if client.last_channel != channel:
        client.last_channel = channel
        changes["last_channel"] = channel
    if channel in (client.unreachable or {}):
        client.unreachable = {k: v for k, v in client.unreachable.items() if k != channel}
        changes["unreachable"] = client.unreachable
    if changes:
        await Client.filter(id=client.id).update(**changes)


async def mark_unreachable(client_id: int, channel: str, at: datetime) -> None:
    """Remember that delivery on `channel` failed for good for this client (a blocked bot, a
    chat that is gone): nothing is sent there until they write there again
    (`remember_channel`), or `mark_reachable` says they came back."""
    async with in_transaction() as conn:
        client = await Client.select_for_update().using_db(conn).get_or_none(id=client_id)
        if client is None or channel in (client.unreachable or {}):
            return
        unreachable = {**(client.unreachable or {}), channel: at.isoformat()}
        await Client.filter(id=client_id).using_db(conn).update(unreachable=unreachable)


async def mark_reachable(channel: str, **identity: Any) -> None:
    """The person behind `identity` (e.g. telegram_user_id=…) can be reached on `channel`
    again, in every salon (Telegram says they unblocked the bot)."""
    async with in_transaction() as conn:
        found = await Client.filter(**identity).select_for_update().using_db(conn)
        for client in found:
            if channel in (client.unreachable or {}):
                rest = {k: v for k, v in client.unreachable.items() if k != channel}
                await Client.filter(id=client.id).using_db(conn).update(unreachable=rest)


@dataclass(frozen=True, slots=True)
class LinkedChat:
    # The chat's client after linking (None only when nothing could be tied).
    client: Client | None
    # The card is new to the salon (greeted as such rather than welcomed back).
    created: bool = False
    # The client had written to the bot before this message (has_written, asked before
    # linking): only they are welcomed back.
    returning: bool = False
    # The welcome bonus this link earned, for the caller to tell after commit.
    welcome: ledger.LedgerResult | None = None


async def link_chat(
    company: Company,
    *,
    whatsapp_chat_id: str,
    phone: str | None,
    current: Client | None,
    channel: str,
    name: str = "",
    locale: str | None = None,
) -> LinkedChat:
    """Tie a chat to the salon's client before a turn, in a channel that knows the sender's
    number without asking (WhatsApp delivered from it: `phone`, normalised) — or cannot see it
    (WhatsApp's hidden `@lid` senders: `phone` None).

    `current` is the client the chat is tied to already. A chat with a phone joins the card of
    that phone (the one the YClients sync made included); a chat whose number stays hidden gets
    a card of its own without a phone and without the welcome bonus, so a phone or a code it
    types opens nobody's balance. Once its number is known, an untouched phoneless card steps
    aside for the salon's card with that phone; one with history is left for the salon to
    merge (a warning in the log)."""
    if current is not None and (current.phone is not None or phone is None):
        return LinkedChat(current, returning=has_written(current))
    created = False
    returning = current is not None and has_written(current)
    welcome: ledger.LedgerResult | None = None
    try:
        if phone is not None:
            if not returning:
                owner = await Client.get_or_none(company_id=company.id, phone=phone)
                returning = owner is not None and has_written(owner)
            joined = await _join_chat(company, phone, whatsapp_chat_id, name, locale, current)
            if joined is None:
                return LinkedChat(current, returning=returning)
            client, created, welcome = joined.client, joined.created, joined.welcome
        else:
            new = await create_client(
                company, whatsapp_chat_id=whatsapp_chat_id, name=name, welcome=False
            )
            client, created = new.client, True
    except IntegrityError:
        # Another replica linked this chat meanwhile: take what it made.
        found = await Client.get_or_none(company_id=company.id, whatsapp_chat_id=whatsapp_chat_id)
        if found is None:
            raise
        client = found
    await remember_channel(client, channel)
    return LinkedChat(client, created, returning and not created, welcome)


async def _join_chat(
    company: Company,
    phone: str,
    chat_id: str,
    name: str,
    locale: str | None,
    current: Client | None,
) -> JoinedClient | None:
    try:
        return await join_by_phone(
            company, phone, whatsapp_chat_id=chat_id, name=name, locale=locale
        )
    except PhoneTaken:
        pass
    # The chat had a card without a phone (its number was hidden) and the number, now known,
    # is another card's.
    if current is None or current.phone is not None:
        return None
    if current.balance or await LedgerEntry.exists(client_id=current.id):
        log.warning(
            "chat %s: client %s has history and %s is another client's; "
            "the salon should merge them",
            mask_chat_id(chat_id),
            current.id,
            mask_phone(phone),
        )
        return None
    await Client.filter(id=current.id).update(whatsapp_chat_id=None)
    return await join_by_phone(company, phone, whatsapp_chat_id=chat_id, name=name, locale=locale)
