"""YClients records -> bookings and bonuses. One code path for the sync and the webhooks.

Applying a record is convergent: the booking takes the newest state (an older
`last_change_date` never overwrites a newer one), and the bonus for it is brought to what that
state deserves — `accrual_percent` of the visit's value while the client came, nothing
otherwise — by ledger entries whose idempotency keys are numbered per booking. Applying the
same record twice, or a sync and a webhook racing, changes nothing twice; attendance
1 -> -1 -> 1 ends with exactly one accrual net.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core import codes, ledger
from core.clients import create_client
from core.models import (
    Booking,
    BookingStatus,
    Client,
    Company,
    LedgerEntry,
    LedgerKind,
    MarketplaceEvent,
)
from core.phones import normalize_phone
from core.yclients import parse_yclients_datetime

log = logging.getLogger(__name__)

_CODE_CANDIDATE = re.compile(r"[0-9A-Za-z]{3}[-\s]?[0-9A-Za-z]{3}[-\s]?[0-9A-Za-z]{3}")
_BOOKING_FIELDS = (
    "client_id",
    "visit_at",
    "services",
    "staff_name",
    "cost",
    "status",
    "attendance",
    "deleted",
    "last_change_at",
)


@dataclass
class ApplyStats:
    fetched: int = 0
    created: int = 0
    updated: int = 0
    stale: int = 0
    matched: int = 0
    unmatched: int = 0
    awarded: int = 0
    reversed: int = 0
    unmatched_records: list[int] = field(default_factory=list)
    changes: list[ledger.LedgerResult] = field(default_factory=list)

    def add(self, other: ApplyStats) -> None:
        for name in ("fetched", "created", "updated", "stale", "matched", "unmatched"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.awarded += other.awarded
        self.reversed += other.reversed
        self.unmatched_records.extend(other.unmatched_records)
        self.changes.extend(other.changes)

    def summary(self) -> dict[str, int]:
        return {
            name: getattr(self, name)
            for name in (
                "fetched",
                "created",
                "updated",
                "stale",
                "matched",
                "unmatched",
                "awarded",
                "reversed",
            )
        }


def visit_value(record: dict[str, Any]) -> int:
    """The sum of the service lines' `cost` (already after each line's discount)."""
    total = 0.0
    for line in record.get("services") or []:
        try:
            total += float(line.get("cost") or 0)
        except (TypeError, ValueError):
            continue
    return max(0, round(total))


def _attendance(record: dict[str, Any]) -> int:
    for key in ("attendance", "visit_attendance"):
        value = record.get(key)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                continue
    return 0


def booking_status(record: dict[str, Any]) -> BookingStatus:
    if record.get("deleted"):
        return BookingStatus.CANCELLED
    return {
        1: BookingStatus.COMPLETED,
        -1: BookingStatus.NO_SHOW,
        2: BookingStatus.CONFIRMED,
    }.get(_attendance(record), BookingStatus.PENDING)


def codes_in(text: str | None) -> list[str]:
    if not text:
        return []
    found = [codes.parse(m.group(0)) for m in _CODE_CANDIDATE.finditer(text)]
    return [code for code in found if code]


def _record_client(record: dict[str, Any]) -> dict[str, Any] | None:
    client = record.get("client")
    return client if isinstance(client, dict) and client else None


def _newest_per_id(records: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    newest: dict[int, dict[str, Any]] = {}
    for record in records:
        record_id = int(record["id"])
        previous = newest.get(record_id)
        if previous is None or _changed_at(record) >= _changed_at(previous):
            newest[record_id] = record
    return newest


def _when(value: object) -> datetime | None:
    """An instant from a record's date field; offsets come as `+03:00` and as `+0300`."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_yclients_datetime(value)
    except ValueError:
        log.warning("unparseable YClients date %r ignored", value)
        return None


def _changed_at(record: dict[str, Any]) -> datetime:
    return _when(record.get("last_change_date")) or datetime.min.replace(tzinfo=UTC)


async def _match_clients(
    company: Company, records: Sequence[dict[str, Any]]
) -> dict[int, Client | None]:
    """Record id -> client: the code in the comment, then phone, then email. A record whose
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
        info = _record_client(record)
        if info:
            phone = normalize_phone(info.get("phone"))
            if phone:
                by_phone[record_id] = phone
            email = (info.get("email") or "").strip().lower()
            if email:
                by_email[record_id] = email
    known_codes = {
        c.code: c
        for c in await Client.filter(company_id=company.id, code__in=set(by_code.values()))
    }
    known_phones = {
        c.phone: c
        for c in await Client.filter(company_id=company.id, phone__in=set(by_phone.values()))
    }
    known_emails = {
        (c.email or "").lower(): c
        for c in await Client.filter(company_id=company.id, email__in=set(by_email.values()))
    }
    matched: dict[int, Client | None] = {}
    for record in records:
        record_id = int(record["id"])
        client = (
            known_codes.get(by_code.get(record_id, ""))
            or known_phones.get(by_phone.get(record_id, ""))
            or known_emails.get(by_email.get(record_id, ""))
        )
        if client is None and record_id in by_phone:
            client = await _client_for_phone(company, record, by_phone[record_id])
            known_phones[by_phone[record_id]] = client
        matched[record_id] = client
    return matched


async def _client_for_phone(company: Company, record: dict[str, Any], phone: str) -> Client:
    info = _record_client(record) or {}
    yclients_id = info.get("id")
    try:
        new = await create_client(
            company,
            phone=phone,
            name=str(info.get("name") or ""),
            email=(info.get("email") or "").strip().lower() or None,
            yclients_client_id=int(yclients_id) if yclients_id else None,
            welcome=False,
        )
        return new.client
    except IntegrityError:
        # Created meanwhile by a concurrent sync, webhook or chat.
        return await Client.get(company_id=company.id, phone=phone)


def _booking_values(record: dict[str, Any], client: Client | None) -> dict[str, Any]:
    staff = record.get("staff") or {}
    return {
        "visit_at": _when(record.get("datetime")),
        "services": [
            {
                "id": line.get("id"),
                "title": line.get("title"),
                "cost": line.get("cost"),
                "amount": line.get("amount"),
            }
            for line in record.get("services") or []
            if isinstance(line, dict)
        ],
        "staff_name": str(staff.get("name") or "") if isinstance(staff, dict) else "",
        "cost": visit_value(record),
        "status": booking_status(record),
        "attendance": _attendance(record),
        "deleted": bool(record.get("deleted")),
        "last_change_at": _when(record.get("last_change_date")),
        **({"client_id": client.id} if client is not None else {}),
    }


def _with_stored(record: dict[str, Any], booking: Booking) -> dict[str, Any]:
    """The record with what is stored filling the fields it lacks: a delete event may carry
    little more than the id, and that must not wipe the visit's time, services or cost."""
    stored: dict[str, Any] = {
        "datetime": booking.visit_at.isoformat() if booking.visit_at else None,
        "services": booking.services,
        "staff": {"name": booking.staff_name},
        "deleted": booking.deleted,
        "last_change_date": booking.last_change_at.isoformat() if booking.last_change_at else None,
    }
    if "attendance" not in record and "visit_attendance" not in record:
        stored["attendance"] = booking.attendance
    return {**stored, **record}


async def apply_records(company: Company, records: Sequence[dict[str, Any]]) -> ApplyStats:
    """Upsert a batch of records (one company) and settle their bonuses.

    A record that carries no `client` (deletes often do not) keeps the stored booking's client,
    so a reversal never needs `data.client`. Notify `stats.changes` after this returns.
    """
    stats = ApplyStats(fetched=len(records))
    newest = _newest_per_id(records)
    if not newest:
        return stats
    matched = await _match_clients(company, list(newest.values()))
    touched: list[Booking] = []
    async with in_transaction() as conn:
        query = Booking.filter(company_id=company.id, yclients_record_id__in=list(newest))
        if conn.capabilities.dialect == "postgres":
            query = query.select_for_update()
        existing = {b.yclients_record_id: b for b in await query.using_db(conn)}
        to_create: list[Booking] = []
        to_update: list[Booking] = []
        for record_id, record in newest.items():
            booking = existing.get(record_id)
            if booking is None:
                values = _booking_values(record, matched[record_id])
                booking = Booking(company_id=company.id, yclients_record_id=record_id, **values)
                to_create.append(booking)
            else:
                values = _booking_values(_with_stored(record, booking), matched[record_id])
                incoming = values["last_change_at"]
                if booking.last_change_at and incoming and incoming < booking.last_change_at:
                    stats.stale += 1
                    continue
                for name, value in values.items():
                    setattr(booking, name, value)
                to_update.append(booking)
        if to_create:
            await Booking.bulk_create(to_create, using_db=conn)
        if to_update:
            await Booking.bulk_update(to_update, fields=list(_BOOKING_FIELDS), using_db=conn)
    stats.created, stats.updated = len(to_create), len(to_update)
    if to_create:
        # bulk_create does not return ids on every backend: read them back.
        created = await Booking.filter(
            company_id=company.id,
            yclients_record_id__in=[b.yclients_record_id for b in to_create],
        )
        touched.extend(created)
    touched.extend(to_update)
    for booking in touched:
        if booking.client_id is None:
            stats.unmatched += 1
            stats.unmatched_records.append(booking.yclients_record_id)
        else:
            stats.matched += 1
    await _settle_bonuses(company, [b for b in touched if b.client_id is not None], stats)
    return stats


async def apply_record_by_id(
    company: Company, record: dict[str, Any], *, deleted: bool = False
) -> ApplyStats:
    """A webhook's record; `deleted=True` for a `delete` event whatever `data` says. The record
    may be as bare as `{"id": …}`: what it lacks is taken from the stored booking."""
    if deleted:
        record = {**record, "deleted": True}
    return await apply_records(company, [record])


def _earned_for(company: Company, booking: Booking) -> int:
    if booking.status is not BookingStatus.COMPLETED or booking.cost <= 0:
        return 0
    return booking.cost * company.accrual_percent // 100


async def _settle_bonuses(company: Company, bookings: Sequence[Booking], stats: ApplyStats) -> None:
    if not bookings:
        return
    entries = await LedgerEntry.filter(
        booking_id__in=[b.id for b in bookings],
        kind__in=[LedgerKind.ACCRUAL, LedgerKind.REVERSAL],
    ).order_by("id")
    held: dict[int, int] = {}
    count: dict[int, int] = {}
    for entry in entries:
        assert entry.booking_id is not None
        # A reversal settles everything earned so far, even when the balance fell short.
        held[entry.booking_id] = (
            held.get(entry.booking_id, 0) + entry.amount if entry.kind is LedgerKind.ACCRUAL else 0
        )
        count[entry.booking_id] = count.get(entry.booking_id, 0) + 1
    for booking in bookings:
        assert booking.client_id is not None
        target = _earned_for(company, booking)
        current = held.get(booking.id, 0)
        seq = count.get(booking.id, 0)
        if current > target:
            result = await ledger.reverse(
                booking.client_id,
                current,
                f"booking:{booking.id}:{seq}:reversal",
                booking_id=booking.id,
                reason=f"record {booking.yclients_record_id}: {booking.status}",
            )
            seq += 1
            current = 0
            if result.created:
                stats.reversed += 1
                stats.changes.append(result)
                if result.shortfall:
                    await MarketplaceEvent.create(
                        company_id=company.id,
                        kind="reversal_shortfall",
                        details={
                            "client_id": booking.client_id,
                            "booking_id": booking.id,
                            "record_id": booking.yclients_record_id,
                            "shortfall": result.shortfall,
                        },
                    )
                    log.warning(
                        "company %s: reversal for record %s fell short by %s points",
                        company.id,
                        booking.yclients_record_id,
                        result.shortfall,
                    )
        if target > current:
            result = await ledger.accrue(
                booking.client_id,
                target - current,
                f"booking:{booking.id}:{seq}:accrual",
                booking_id=booking.id,
                reason=f"record {booking.yclients_record_id}",
            )
            if result.created:
                stats.awarded += 1
                stats.changes.append(result)
