"""YClients webhook events of a salon, as the inbox keeps and hands them over: their dedupe
key, their handler (records become bookings and bonuses, clients get their contact details
refreshed) and the batch that applies a run of record events together (`RECORD_BATCH`).
`register` puts them in the inbox's handlers."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from tortoise.exceptions import IntegrityError

from core import inbox
from core.bookings import apply
from core.ledger import LedgerResult
from core.models import Client, Company, InboxEvent, IntegrationStatus
from core.phones import normalize_phone
from core.yclients import parse_yclients_datetime

log = logging.getLogger(__name__)

YCLIENTS = "yclients"
_KEY_MAX = 255  # InboxEvent.dedupe_key


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


def _change_stamp(data: object) -> str | None:
    if not isinstance(data, dict):
        return None
    raw = data.get("last_change_date")
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        # `+03:00` and `+0300` spell the same instant: one key for both.
        return parse_yclients_datetime(raw).astimezone(UTC).isoformat()
    except ValueError:
        return raw.strip()


def dedupe_key_for_yclients(payload: Mapping[str, Any]) -> str:
    """company:resource:resource_id:status:last_change_date:hash of `data`.

    Identical deliveries (YClients has sent one change as four identical updates) give one
    key. The hash of the canonical `data` is always part of it, not only when there is no
    `last_change_date`: that date has one-second resolution, and two real changes within a
    second must not be taken for one. A spurious extra event costs nothing — acting on an event
    is idempotent — while a dropped one would lose a change until the next sync.
    """
    data = payload.get("data")
    digest = hashlib.sha256(_canonical(data)).hexdigest()
    stamp = _change_stamp(data) or "-"
    key = ":".join(
        str(part)
        for part in (
            payload.get("company_id"),
            payload.get("resource"),
            payload.get("resource_id"),
            payload.get("status"),
            stamp,
            digest[:32],
        )
    )
    if len(key) > _KEY_MAX:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


async def handle_yclients(event: InboxEvent) -> list[LedgerResult]:
    """A salon's entity event: records become bookings and bonuses, clients get their name,
    phone and email refreshed; every other resource is kept in the inbox and left alone.
    An uninstalled salon's events are done without action."""
    payload = event.payload
    if event.company_id is not None:
        company = await Company.get_or_none(id=event.company_id)
    else:
        company = await Company.get_or_none(yclients_id=int(payload["company_id"]))
    if company is None or company.integration_status is IntegrationStatus.UNINSTALLED:
        log.info("inbox event %s: salon gone or uninstalled, nothing to do", event.id)
        return []
    resource, status, data = payload.get("resource"), payload.get("status"), payload.get("data")
    if resource == "record":
        if not isinstance(data, dict) or "id" not in data:
            raise ValueError("a record event without data.id")
        stats = await apply.apply_record_by_id(company, data, deleted=status == "delete")
        return stats.changes
    if resource == "client" and status != "delete" and isinstance(data, dict):
        await _refresh_client(company, data)
    return []


async def _refresh_client(company: Company, data: dict[str, Any]) -> None:
    yclients_id = data.get("id")
    if not isinstance(yclients_id, int) or isinstance(yclients_id, bool):
        return
    client = await Client.filter(company_id=company.id, yclients_client_id=yclients_id).first()
    if client is None:
        return
    changed: list[str] = []
    name = data.get("name")
    if isinstance(name, str) and name.strip() and name.strip() != client.name:
        client.name = name.strip()[:255]
        changed.append("name")
    email = data.get("email")
    if isinstance(email, str) and email.strip() and email.strip().lower() != client.email:
        client.email = email.strip().lower()[:255]
        changed.append("email")
    raw_phone = data.get("phone")
    phone = normalize_phone(raw_phone) if isinstance(raw_phone, str | int) else None
    if (
        phone
        and phone != client.phone
        # A number another client of the salon holds stays theirs.
        and not await Client.filter(company_id=company.id, phone=phone)
        .exclude(id=client.id)
        .exists()
    ):
        client.phone = phone
        changed.append("phone")
    if not changed:
        return
    try:
        await client.save(update_fields=changed)
    except IntegrityError:
        # The phone was taken meanwhile; keep the rest.
        if "phone" not in changed or len(changed) == 1:
            return
        changed.remove("phone")
        await Client.filter(id=client.id).update(**{f: getattr(client, f) for f in changed})


def is_record_event(event: InboxEvent) -> bool:
    """A record event of a known salon with an integer `data.id`: one a batch can take."""
    payload = event.payload
    if event.source != YCLIENTS or event.company_id is None or not isinstance(payload, dict):
        return False
    data = payload.get("data")
    return (
        payload.get("resource") == "record"
        and isinstance(data, dict)
        and isinstance(data.get("id"), int)
        and not isinstance(data.get("id"), bool)
    )


def record_groups(events: Sequence[InboxEvent]) -> list[list[list[InboxEvent]]]:
    """The events salon by salon (one salon's failure leaves the others batched), each salon's
    in waves: consecutive slices in which no record comes twice, so a record's events still
    apply one after another and the ledger sees every change in the order the events came."""
    by_company: dict[int | None, list[InboxEvent]] = {}
    for event in events:
        by_company.setdefault(event.company_id, []).append(event)
    return [_waves(group) for group in by_company.values()]


def _waves(events: Sequence[InboxEvent]) -> list[list[InboxEvent]]:
    waves: list[list[InboxEvent]] = []
    held: set[int] = set()
    for event in events:
        record_id = event.payload["data"]["id"]
        if not waves or record_id in held:
            waves.append([])
            held = set()
        waves[-1].append(event)
        held.add(record_id)
    return waves


async def apply_record_wave(wave: Sequence[InboxEvent]) -> list[LedgerResult]:
    """One salon's wave of record events through one `apply_records`; an uninstalled or gone
    salon's are done without action."""
    company = await Company.get_or_none(id=wave[0].company_id)
    if company is None or company.integration_status is IntegrationStatus.UNINSTALLED:
        log.info("inbox: %d event(s) of a salon gone or uninstalled, nothing to do", len(wave))
        return []
    records = [
        {**e.payload["data"], "deleted": True}
        if e.payload.get("status") == "delete"
        else e.payload["data"]
        for e in wave
    ]
    stats = await apply.apply_records(company, records)
    return stats.changes


RECORD_BATCH = inbox.Batch(accepts=is_record_event, groups=record_groups, apply=apply_record_wave)


def register(handlers: inbox.Handlers) -> None:
    """The YClients source: its handler, and record events of one salon taken together."""
    handlers.register(YCLIENTS, handle_yclients, batch=RECORD_BATCH)
