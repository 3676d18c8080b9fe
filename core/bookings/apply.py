"""YClients records -> bookings and bonuses. One code path for the sync and the webhooks.

Applying a record is convergent: the booking takes the newest state (an older
`last_change_date` never overwrites a newer one), and the bonus for it is brought to what that
state deserves — `accrual_percent` of the visit's value while the client came, nothing
otherwise — by ledger entries whose idempotency keys are numbered per booking. Applying the
same record twice, or a sync and a webhook racing, changes nothing twice; attendance
1 -> -1 -> 1 ends with exactly one accrual net.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise import connections, timezone
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.transactions import in_transaction

from core import ledger, visits
from core.bookings.matching import match_clients
from core.models import (
    Booking,
    BookingStatus,
    Company,
    LedgerEntry,
    LedgerKind,
    MarketplaceEvent,
)
from core.yclients import parse_yclients_datetime

log = logging.getLogger(__name__)

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


def _well_formed(record: dict[str, Any]) -> dict[str, Any]:
    """The record with what has the wrong shape taken out, so that one odd field is not an
    error the inbox would retry to death: a service line that is not an object is skipped
    (logged), `services` that is not a list, a `staff` or `client` that is not an object and
    a `comment` that is not text count as absent; so do a client's `email` that is not text
    and `id` that is not an integer. A well-formed record (nearly all) comes back as it is."""
    fixed: dict[str, Any] | None = None

    def put(key: str, value: Any) -> None:
        nonlocal fixed
        fixed = fixed if fixed is not None else dict(record)
        if value is _ABSENT:
            fixed.pop(key, None)
        else:
            fixed[key] = value

    services = record.get("services")
    if services is not None:
        if not isinstance(services, list):
            log.warning("record %s: services that are not a list ignored", record.get("id"))
            put("services", _ABSENT)
        elif not all(isinstance(line, dict) for line in services):
            log.warning("record %s: service lines that are not objects skipped", record.get("id"))
            put("services", [line for line in services if isinstance(line, dict)])
    for key in ("staff", "client"):
        value = record.get(key)
        if value is not None and not isinstance(value, dict):
            put(key, None)
    comment = record.get("comment")
    if comment is not None and not isinstance(comment, str):
        put("comment", None)
    client = record.get("client")
    if isinstance(client, dict):
        email, client_id = client.get("email"), client.get("id")
        bad_email = email is not None and not isinstance(email, str)
        bad_id = client_id is not None and (
            not isinstance(client_id, int) or isinstance(client_id, bool)
        )
        if bad_email or bad_id:
            put(
                "client",
                {
                    **client,
                    **({"email": None} if bad_email else {}),
                    **({"id": None} if bad_id else {}),
                },
            )
    return fixed if fixed is not None else record


_ABSENT = object()


def _newest_per_id(records: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    newest: dict[int, dict[str, Any]] = {}
    for record in map(_well_formed, records):
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


def _booking_values(record: dict[str, Any], client_id: int | None) -> dict[str, Any]:
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
        **({"client_id": client_id} if client_id is not None else {}),
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


async def apply_records(
    company: Company,
    records: Sequence[dict[str, Any]],
    *,
    now: datetime | None = None,
    backfill: bool = False,
    plan_visits: bool = True,
) -> ApplyStats:
    """Upsert a batch of records (one company) and settle their bonuses, in one transaction.

    The bookings' rows stay locked from the upsert to the commit, bonuses included, so two
    appliers of one record (two replicas' workers, the sync beside a webhook) take turns: the
    bonus always follows the newest committed state of the booking, never an older state that
    settled after it. On PostgreSQL the rows are created or locked by one
    `INSERT … ON CONFLICT DO UPDATE` in record-id order (no deadlock between appliers of
    overlapping batches, no IntegrityError between concurrent inserts), and the clients whose
    balances move are locked in id order before the first entry; SQLite has one writer.

    A record that carries no `client` (deletes often do not) keeps the stored booking's client,
    so a reversal never needs `data.client`. Notify `stats.changes` after this returns.

    In the same transaction the visit loop plans what the changes call for (core.visits:
    notices, reminders, the after-visit question), as of `now`; `backfill` is a salon's first
    sync, whose old records get no notices. `plan_visits=False` leaves the loop out (the
    benchmark's baseline).
    """
    stats = ApplyStats(fetched=len(records))
    newest = _newest_per_id(records)
    if not newest:
        return stats
    matched = await match_clients(company, list(newest.values()))
    before: dict[int, visits.Visit] = {}
    async with in_transaction() as conn:
        if conn.capabilities.dialect == "postgres":
            touched, created = await _upsert_locked(conn, company, newest, matched, stats, before)
        else:
            touched, created = await _upsert(conn, company, newest, matched, stats, before)
        stats.created, stats.updated = created, len(touched) - created
        # Bonuses are settled in the order the records came, so a batch leaves the ledger as
        # the same records applied one by one would.
        position = {record_id: i for i, record_id in enumerate(newest)}
        touched.sort(key=lambda b: position[b.yclients_record_id])
        for booking in touched:
            if booking.client_id is None:
                stats.unmatched += 1
                stats.unmatched_records.append(booking.yclients_record_id)
            else:
                stats.matched += 1
        await _settle_bonuses(conn, company, [b for b in touched if b.client_id is not None], stats)
        if plan_visits:
            await visits.plan_bookings(
                conn,
                company,
                touched,
                before,
                now=now or datetime.now(UTC),
                notices=not backfill,
                reviews=not backfill,
            )
    await _keep_statistics_fresh(created)
    return stats


def _updated(
    booking: Booking, record: dict[str, Any], client_id: int | None, stats: ApplyStats
) -> bool:
    """Bring a stored booking to the record; False (and counted stale) when the record is
    older than what is stored."""
    values = _booking_values(_with_stored(record, booking), client_id)
    incoming = values["last_change_at"]
    if booking.last_change_at and incoming and incoming < booking.last_change_at:
        stats.stale += 1
        return False
    for name, value in values.items():
        setattr(booking, name, value)
    return True


async def _upsert(
    conn: BaseDBAsyncClient,
    company: Company,
    newest: dict[int, dict[str, Any]],
    matched: dict[int, int | None],
    stats: ApplyStats,
    before: dict[int, visits.Visit],
) -> tuple[list[Booking], int]:
    """SQLite (one writer, the transaction holds it): read, create, update with the ORM.
    The bookings brought up to date (stale ones left out) and how many were created; `before`
    gets the stored state of each existing booking, by id."""
    query = Booking.filter(company_id=company.id, yclients_record_id__in=list(newest))
    existing = {b.yclients_record_id: b for b in await query.using_db(conn)}
    to_create: list[Booking] = []
    to_update: list[Booking] = []
    for record_id, record in newest.items():
        booking = existing.get(record_id)
        if booking is None:
            values = _booking_values(record, matched[record_id])
            to_create.append(Booking(company_id=company.id, yclients_record_id=record_id, **values))
        else:
            before[booking.id] = visits.Visit.of(booking)
            if _updated(booking, record, matched[record_id], stats):
                to_update.append(booking)
    if to_create:
        await Booking.bulk_create(to_create, using_db=conn)
        # bulk_create does not return ids on every backend: read them back.
        ids = dict(
            await Booking.filter(
                company_id=company.id,
                yclients_record_id__in=[b.yclients_record_id for b in to_create],
            )
            .using_db(conn)
            .values_list("yclients_record_id", "id")
        )
        for booking in to_create:
            booking.id = ids[booking.yclients_record_id]
    if to_update:
        await Booking.bulk_update(to_update, fields=list(_BOOKING_FIELDS), using_db=conn)
    return to_create + to_update, len(to_create)


# Every record of the batch inserted, or its stored row locked and returned as it is (the
# no-op DO UPDATE), one row after another in record-id order: concurrent appliers of
# overlapping batches take the rows in the same order, and one that inserts a record another
# has just inserted waits for it and gets its row instead of an IntegrityError. `xmax = 0`
# only on a row this statement inserted.
_UPSERT = (
    "INSERT INTO booking (company_id, yclients_record_id, client_id, visit_at, services, "
    "staff_name, cost, status, attendance, deleted, last_change_at, created_at, updated_at) "
    "SELECT $1::int, t.record_id, t.client_id, t.visit_at, t.services::jsonb, t.staff_name, "
    "t.cost, t.status, t.attendance, t.deleted, t.last_change_at, $12::timestamptz, "
    "$12::timestamptz "
    "FROM unnest($2::bigint[], $3::int[], $4::timestamptz[], $5::text[], $6::varchar[], "
    "$7::int[], $8::varchar[], $9::smallint[], $10::bool[], $11::timestamptz[]) "
    "AS t(record_id, client_id, visit_at, services, staff_name, cost, status, attendance, "
    "deleted, last_change_at) "
    "ORDER BY t.record_id "
    "ON CONFLICT (company_id, yclients_record_id) DO UPDATE SET company_id = EXCLUDED.company_id "
    "RETURNING id, yclients_record_id, client_id, visit_at, services::text AS services, "
    "staff_name, cost, status, attendance, deleted, last_change_at, (xmax = 0) AS inserted"
)


async def _upsert_locked(
    conn: BaseDBAsyncClient,
    company: Company,
    newest: dict[int, dict[str, Any]],
    matched: dict[int, int | None],
    stats: ApplyStats,
    before: dict[int, visits.Visit],
) -> tuple[list[Booking], int]:
    """PostgreSQL: create or lock every booking of the batch in one statement (`_UPSERT`),
    then update the stored ones the records move on. Same result as `_upsert`."""
    fresh = {
        record_id: _booking_values(record, matched[record_id])
        for record_id, record in newest.items()
    }
    columns: list[list[Any]] = [[] for _ in range(10)]
    for record_id, values in fresh.items():
        line = (
            record_id,
            values.get("client_id"),
            values["visit_at"],
            json.dumps(values["services"], separators=(",", ":"), ensure_ascii=False),
            values["staff_name"],
            values["cost"],
            values["status"].value,
            values["attendance"],
            values["deleted"],
            values["last_change_at"],
        )
        for column, value in zip(columns, line, strict=True):
            column.append(value)
    now = timezone.localtime()  # what the ORM writes for auto_now_add / auto_now
    rows = await conn.execute_query_dict(_UPSERT, [company.id, *columns, now])
    created: list[Booking] = []
    to_update: list[Booking] = []
    for row in rows:
        record_id = int(row["yclients_record_id"])
        if row["inserted"]:
            values = fresh[record_id]
            booking = Booking(company_id=company.id, yclients_record_id=record_id, **values)
            booking.id = int(row["id"])
            booking._saved_in_db = True
            created.append(booking)
            continue
        booking = Booking(
            id=int(row["id"]),
            company_id=company.id,
            yclients_record_id=record_id,
            client_id=row["client_id"],
            visit_at=row["visit_at"],
            services=json.loads(row["services"]),
            staff_name=row["staff_name"],
            cost=row["cost"],
            status=BookingStatus(row["status"]),
            attendance=row["attendance"],
            deleted=row["deleted"],
            last_change_at=row["last_change_at"],
        )
        booking._saved_in_db = True
        before[booking.id] = visits.Visit.of(booking)
        if _updated(booking, newest[record_id], matched[record_id], stats):
            to_update.append(booking)
    if to_update:
        await Booking.bulk_update(to_update, fields=list(_BOOKING_FIELDS), using_db=conn)
    return created + to_update, len(created)


async def apply_record_by_id(
    company: Company,
    record: dict[str, Any],
    *,
    deleted: bool = False,
    now: datetime | None = None,
) -> ApplyStats:
    """A webhook's record; `deleted=True` for a `delete` event whatever `data` says. The record
    may be as bare as `{"id": …}`: what it lacks is taken from the stored booking."""
    if deleted:
        record = {**record, "deleted": True}
    return await apply_records(company, [record], now=now)


def _earned_for(company: Company, booking: Booking) -> int:
    if booking.status is not BookingStatus.COMPLETED or booking.cost <= 0:
        return 0
    earned: int = booking.cost * company.accrual_percent // 100
    return earned


async def _settle_bonuses(
    conn: BaseDBAsyncClient, company: Company, bookings: Sequence[Booking], stats: ApplyStats
) -> None:
    """Bring each booking's bonus to what its state deserves, inside the caller's transaction
    that holds the bookings' rows: what is held and the next entry number are read under that
    lock, so they are true until the commit."""
    if not bookings:
        return
    entries = (
        await LedgerEntry.filter(
            booking_id__in=[b.id for b in bookings],
            kind__in=[LedgerKind.ACCRUAL, LedgerKind.REVERSAL],
        )
        .using_db(conn)
        .order_by("id")
        .values_list("booking_id", "kind", "amount")
    )
    held: dict[int, int] = {}
    count: dict[int, int] = {}
    for booking_id, kind, amount in entries:
        # A reversal settles everything earned so far, even when the balance fell short.
        held[booking_id] = held.get(booking_id, 0) + amount if kind == LedgerKind.ACCRUAL else 0
        count[booking_id] = count.get(booking_id, 0) + 1
    # (booking, amount held to reverse or 0, amount to accrue or 0, next entry number)
    plan: list[tuple[Booking, int, int, int]] = []
    for booking in bookings:
        target = _earned_for(company, booking)
        current = held.get(booking.id, 0)
        reverse = current if current > target else 0
        accrue = target - (current - reverse) if target > current - reverse else 0
        if reverse or accrue:
            plan.append((booking, reverse, accrue, count.get(booking.id, 0)))
    if not plan:
        return
    # The clients' rows in id order before any of them moves: appliers of different bookings
    # of the same clients would otherwise lock them in opposite orders.
    await ledger.lock_clients(b.client_id for b, *_ in plan if b.client_id is not None)
    # Accruals wait here and go to the ledger together; a reversal sends the waiting ones first,
    # so the entries come in the order one-by-one would write them.
    waiting: list[ledger.Accrual] = []
    for booking, reverse, accrue, seq in plan:
        if booking.client_id is None:
            raise RuntimeError("a planned accrual without a client")
        if reverse:
            await _accrue_all(waiting, stats)
            waiting = []
            result = await ledger.reverse(
                booking.client_id,
                reverse,
                f"booking:{booking.id}:{seq}:reversal",
                booking_id=booking.id,
                reason=f"record {booking.yclients_record_id}: {booking.status}",
            )
            seq += 1
            if result.created:
                stats.reversed += 1
                stats.changes.append(result)
                if result.shortfall:
                    await MarketplaceEvent.create(
                        using_db=conn,
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
        if accrue:
            waiting.append(
                ledger.Accrual(
                    booking.client_id,
                    accrue,
                    f"booking:{booking.id}:{seq}:accrual",
                    booking.id,
                    f"record {booking.yclients_record_id}",
                )
            )
    await _accrue_all(waiting, stats)


async def _accrue_all(accruals: Sequence[ledger.Accrual], stats: ApplyStats) -> None:
    """The accruals, in order (`ledger.accrue_many`); what they created is counted in `stats`."""
    if not accruals:
        return
    for result in await ledger.accrue_many(accruals):
        if result.created:
            stats.awarded += 1
            stats.changes.append(result)


# --- planner statistics after bulk loads (PostgreSQL) ---------------------------------------


@dataclass
class _Growth:
    created: int = 0  # bookings this process created since the statistics were last seen
    rows: float = 0.0  # the booking table's row count in those statistics
    busy: bool = False


_growth = _Growth()
_ANALYZE_AFTER = 1_000
_TABLE_ROWS = "SELECT reltuples FROM pg_class WHERE oid = 'booking'::regclass"
_ANALYZE = "ANALYZE booking, client, ledger_entry"


async def _keep_statistics_fresh(created: int) -> None:
    """Refresh PostgreSQL's statistics when this process has more than doubled the booking
    table since they were taken (and created at least 1,000 bookings).

    Autovacuum refreshes them only a minute or so after a bulk load, and PostgreSQL's docs
    advise an ANALYZE after one. A new salon's first sync, or a burst of its webhooks, fills
    the tables within seconds while the plans still take them for nearly empty: every lookup
    by record id then reads all of the salon's bookings, and the sync slows down more and more
    as it goes (bench/README.md, sync). ANALYZE samples a bounded number of rows and also
    drops the stale cached plans.
    """
    if created <= 0 or _growth.busy:
        return
    _growth.created += created
    if _growth.created < max(_ANALYZE_AFTER, _growth.rows):
        return
    conn = connections.get("default")
    if conn.capabilities.dialect != "postgres" or isinstance(conn, TransactionalDBClient):
        return
    _growth.busy = True
    try:
        rows = await conn.execute_query_dict(_TABLE_ROWS)
        known = float(rows[0]["reltuples"]) if rows else 0.0
        if _growth.created >= max(_ANALYZE_AFTER, known):
            # Autovacuum has not caught up with what this process wrote: do its part now.
            await conn.execute_script(_ANALYZE)
            rows = await conn.execute_query_dict(_TABLE_ROWS)
            known = float(rows[0]["reltuples"]) if rows else 0.0
        _growth.rows = max(known, 0.0)
        _growth.created = 0
    except Exception:
        # Only an optimisation: the records are applied already.
        log.warning("refreshing the planner statistics failed", exc_info=True)
        _growth.created = 0
    finally:
        _growth.busy = False
