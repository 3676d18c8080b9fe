"""Which client a YClients record belongs to: the code in its comment, then phone, then email.

A record whose client has a phone no client of the salon has yet creates that client (no
welcome bonus: they have not joined the bot).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core import codes
from core.clients import create_client
from core.models import Client, Company
from core.phones import normalize_phone

_CODE_CANDIDATE = re.compile(r"[0-9A-Za-z]{3}[-\s]?[0-9A-Za-z]{3}[-\s]?[0-9A-Za-z]{3}")


def codes_in(text: str | None) -> list[str]:
    if not text:
        return []
    found = [codes.parse(m.group(0)) for m in _CODE_CANDIDATE.finditer(text)]
    return [code for code in found if code]


def record_client(record: dict[str, Any]) -> dict[str, Any] | None:
    client = record.get("client")
    return client if isinstance(client, dict) and client else None


async def match_clients(
    company: Company, records: Sequence[dict[str, Any]]
) -> dict[int, int | None]:
    """Record id -> client id: the code in the comment, then phone, then email. A record whose
    client has a phone but is not known yet creates that client (no welcome bonus: they have
    not joined the bot); one with neither stays unmatched."""
    by_code: dict[int, str] = {}
    by_phone: dict[int, str] = {}
    by_email: dict[int, str] = {}
    for record in records:
        record_id = int(record["id"])
        found = codes_in(record.get("comment"))
        if found:
            by_code[record_id] = found[0]
        info = record_client(record)
        if info:
            phone = _normalized_phone(info.get("phone"))
            if phone:
                by_phone[record_id] = phone
            email = (info.get("email") or "").strip().lower()
            if email:
                by_email[record_id] = email
    # Ids only: building a model per row costs more than the rest of the lookup.
    clients = Client.filter(company_id=company.id)
    known_codes: dict[str, int] = dict(
        await clients.filter(code__in=set(by_code.values())).values_list("code", "id")
    )
    known_phones: dict[str, int] = dict(
        await clients.filter(phone__in=set(by_phone.values())).values_list("phone", "id")
    )
    known_emails: dict[str, int] = {
        (email or "").lower(): client_id
        for email, client_id in await clients.filter(email__in=set(by_email.values())).values_list(
            "email", "id"
        )
    }
    matched: dict[int, int | None] = {}
    # Phone -> the first record that brings it, for clients not known yet: created together,
    # and every record waiting for one of them gets it after.
    new_phones: dict[str, dict[str, Any]] = {}
    waiting: list[tuple[int, str]] = []
    for record in records:
        record_id = int(record["id"])
        phone = by_phone.get(record_id)
        client = _first(known_codes.get(by_code.get(record_id, "")), known_phones.get(phone or ""))
        if client is None and phone is not None and phone in new_phones:
            # An earlier record brought this phone: matched by phone, before any email.
            waiting.append((record_id, phone))
        else:
            client = _first(client, known_emails.get(by_email.get(record_id, "")))
            if client is None and phone is not None:
                new_phones[phone] = record
                waiting.append((record_id, phone))
        matched[record_id] = client
    if new_phones:
        created = await _clients_for_phones(company, new_phones)
        for record_id, phone in waiting:
            matched[record_id] = created[phone]
    return matched


def _first(*client_ids: int | None) -> int | None:
    return next((c for c in client_ids if c is not None), None)


def _normalized_phone(raw: object) -> str | None:
    """normalize_phone, remembered: a salon's records bring the same few thousand numbers
    again and again, and parsing one costs more than the rest of matching its record."""
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        return _normalized_phone_cached(raw)
    return normalize_phone(raw)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=32_768)
def _normalized_phone_cached(raw: str | int) -> str | None:
    return normalize_phone(raw)


async def _clients_for_phones(
    company: Company, new_phones: dict[str, dict[str, Any]]
) -> dict[str, int]:
    """Phone -> client id for phones no client of the salon had: one INSERT for all of them.

    If that fails (a phone created meanwhile by a concurrent sync, webhook or chat, or — rarely
    — a code already taken), nothing of it is kept and each is created or found one by one.
    """
    fresh = [
        Client(company_id=company.id, phone=phone, code=codes.generate(), **_client_fields(record))
        for phone, record in new_phones.items()
    ]
    try:
        async with in_transaction() as conn:
            await Client.bulk_create(fresh, using_db=conn)
    except IntegrityError:
        return {
            phone: (await _client_for_phone(company, record, phone)).id
            for phone, record in new_phones.items()
        }
    # bulk_create does not return ids on every backend: read them back.
    found = Client.filter(company_id=company.id, phone__in=list(new_phones))
    return dict(await found.values_list("phone", "id"))


def _client_fields(record: dict[str, Any]) -> dict[str, Any]:
    info = record_client(record) or {}
    yclients_id = info.get("id")
    return {
        "name": str(info.get("name") or ""),
        "email": (info.get("email") or "").strip().lower() or None,
        "yclients_client_id": int(yclients_id) if yclients_id else None,
    }


async def _client_for_phone(company: Company, record: dict[str, Any], phone: str) -> Client:
    try:
        new = await create_client(company, phone=phone, welcome=False, **_client_fields(record))
        return new.client
    except IntegrityError:
        # Created meanwhile by a concurrent sync, webhook or chat.
        return await Client.get(company_id=company.id, phone=phone)
