"""Creating and finding clients; every client gets a unique code when it is created."""

from __future__ import annotations

from dataclasses import dataclass

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
