"""Salons: registering one from its YClients data, and the URLs handed to YClients."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from tortoise.transactions import in_transaction

from core.models import Company, IntegrationStatus, PendingApiKey


def new_hook_token() -> str:
    return secrets.token_urlsafe(32)


def same_hook_token(stored: str, given: str) -> bool:
    """Constant-time: a lookup by the token already matched it, and this keeps a collation
    or a future lookup by prefix from ever accepting a near miss."""
    return hmac.compare_digest(stored.encode(), given.encode())


async def by_hook_token(token: str) -> Company | None:
    company = await Company.get_or_none(hook_token=token)
    if company is None or not same_hook_token(company.hook_token, token):
        return None
    return company


def webhook_url(base_url: str, company: Company) -> str:
    return f"{base_url}/webhook/yclients/{company.hook_token}"


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """(the key to show once, the hash to store)."""
    key = "sb_" + secrets.token_urlsafe(32)
    return key, hash_api_key(key)


async def company_by_api_key(api_key: str) -> Company | None:
    """The salon whose key this is. A key still unconfirmed (PendingApiKey) is proven by this
    very request: it becomes the salon's key and the salon's other unconfirmed keys go."""
    if not api_key:
        return None
    digest = hash_api_key(api_key)
    company = await Company.get_or_none(api_key_hash=digest)
    if company is not None:
        return company if hmac.compare_digest(company.api_key_hash or "", digest) else None
    pending = await PendingApiKey.get_or_none(key_hash=digest)
    if pending is None or not hmac.compare_digest(pending.key_hash, digest):
        return None
    await adopt_api_key(pending.company_id, digest)
    return await Company.get_or_none(id=pending.company_id)


async def add_pending_api_key(company_id: int, digest: str) -> None:
    """Remember a key about to be sent to YClients, before YClients hears of it."""
    await PendingApiKey.create(company_id=company_id, key_hash=digest)


async def adopt_api_key(company_id: int, digest: str) -> None:
    """`digest` is the key YClients holds: the salon's key from now on; the others go."""
    async with in_transaction() as conn:
        await Company.filter(id=company_id).using_db(conn).update(api_key_hash=digest)
        await PendingApiKey.filter(company_id=company_id).using_db(conn).delete()


async def drop_api_keys(company_id: int) -> None:
    """The salon's key and every unconfirmed one stop working (uninstall, a new start)."""
    await Company.filter(id=company_id).update(api_key_hash=None)
    await PendingApiKey.filter(company_id=company_id).delete()


def default_bookform(info: dict[str, Any]) -> str | None:
    forms = [f for f in info.get("bookforms") or [] if isinstance(f, dict) and f.get("url")]
    chosen = next((f for f in forms if f.get("is_default")), forms[0] if forms else None)
    return str(chosen["url"]) if chosen else None


async def upsert_from_yclients(
    info: dict[str, Any],
    *,
    status: IntegrationStatus,
    user_token: str | None = None,
) -> tuple[Company, bool]:
    """Create or refresh a salon from `GET /company/{id}`; (company, created)."""
    values: dict[str, Any] = {
        "title": str(info.get("title") or ""),
        "timezone": str(info.get("timezone_name") or "Europe/Moscow"),
        "bookform_url": default_bookform(info),
        "integration_status": status,
    }
    if user_token:
        values["yclients_user_token"] = user_token
    company = await Company.get_or_none(yclients_id=int(info["id"]))
    if company is None:
        company = await Company.create(
            yclients_id=int(info["id"]), hook_token=new_hook_token(), **values
        )
        return company, True
    company.update_from_dict(values)
    await company.save()
    return company, False
