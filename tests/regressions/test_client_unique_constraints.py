"""Tortoise 1.1 rebuilt SQLite's `client` table without its unique constraints (migration 0005
restores them): one client per (salon, phone), per (salon, Telegram user), per (salon, chat)."""

from __future__ import annotations

import pytest
from tortoise.exceptions import IntegrityError

from core.models import Client, Company


@pytest.mark.parametrize(
    "field", [("phone", "+79991234567"), ("telegram_user_id", 42), ("whatsapp_chat_id", "x@lid")]
)
async def test_a_salon_never_holds_two_clients_with_one_identity(
    orm: str, field: tuple[str, object]
) -> None:
    name, value = field
    salon = await Company.create(yclients_id=1, hook_token="a")
    other = await Company.create(yclients_id=2, hook_token="b")
    await Client.create(company=salon, code="AAAAAAAA0", **{name: value})
    await Client.create(company=other, code="AAAAAAAA1", **{name: value})  # another salon: fine
    await Client.create(company=salon, code="AAAAAAAA2")  # unset twice: fine
    await Client.create(company=salon, code="AAAAAAAA3")
    with pytest.raises(IntegrityError):
        await Client.create(company=salon, code="AAAAAAAA4", **{name: value})
