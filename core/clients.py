"""Creating and finding clients; every client gets a unique code when it is created."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError

from core import codes, ledger
from core.models import Client, Company

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
    name: str = "",
    locale: str | None = None,
) -> JoinedClient:
    """A person proved through a chat channel that `phone` (normalised) is theirs: tie the
    channel's id (Telegram user id, WhatsApp chat id) to the salon's client with that
    phone — one the YClients sync created included — rather than creating a second one.

    Only a phone the channel verified belongs here (a Telegram contact of the sender's own);
    a typed phone never opens an existing client's balance. The welcome bonus is given the
    first time a client joins a chat, whichever channel (its key is per client)."""
    if telegram_user_id is None and whatsapp_chat_id is None:
        raise ValueError("join_by_phone needs the channel's id of the person")
    for attempt in range(2):
        try:
            return await _join(company, phone, telegram_user_id, whatsapp_chat_id, name, locale)
        except IntegrityError:
            # A concurrent join or sync created the row meanwhile: the second pass finds it.
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _join(
    company: Company,
    phone: str,
    telegram_user_id: int | None,
    whatsapp_chat_id: str | None,
    name: str,
    locale: str | None,
) -> JoinedClient:
    link: dict[str, Any] = {}
    if telegram_user_id is not None:
        link["telegram_user_id"] = telegram_user_id
    if whatsapp_chat_id is not None:
        link["whatsapp_chat_id"] = whatsapp_chat_id
    mine = await Client.get_or_none(company_id=company.id, **link)
    owner = await Client.get_or_none(company_id=company.id, phone=phone)
    if mine is not None and owner is not None and mine.id != owner.id:
        raise PhoneTaken(phone)
    client = mine or owner
    if client is None:
        new = await create_client(
            company,
            phone=phone,
            name=name[:255],
            locale=locale,
            telegram_user_id=telegram_user_id,
            whatsapp_chat_id=whatsapp_chat_id,
        )
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
