"""Planning: the scheduled messages a booking's state calls for, derived whenever it changes.

`plan_bookings` runs inside the transaction that wrote the bookings (core.bookings.apply), for
the whole batch at once: one read of the batch's rows, at most one insert and a few updates.
What it plans:

* a notice when a linked client's booking is created, moved (time, master or services) or
  cancelled — only for a visit still ahead, never for the backfill of a salon's first sync,
  never when the change is only a replay (the state did not change; the key is unique too);
* the reminders of an upcoming visit (the day before at the salon's local time, N hours
  before), each moved out of the salon's quiet hours to their end while the visit is still
  ahead, none whose time had passed when the record was made;
* the silent-client alert (the admins are told when no reminder was answered);
* after a completed visit, "how was it?" N hours later, never inside quiet hours.

A visit moved to another time gets rows of its own (the keys carry the visit's instant) and
its pending ones are dropped, so "the reminders move with it"; a cancelled visit drops them.
The client's own say (reminders off, messages off) is checked when a row is sent, so a client
who changes their mind in between is heard either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise import timezone
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from core.models import (
    Booking,
    Company,
    IntegrationStatus,
    ScheduledMessage,
    ScheduledStatus,
)
from core.salon_settings import LoopSettings, loop
from core.visits import kinds

# A completed visit marked so late that "how was it?" would come this long after its time is
# not asked about any more.
REVIEW_STALE = timedelta(hours=12)
# Bookings whose visit ended longer ago than this are not looked at (nothing left to plan but
# a review, which REVIEW_STALE rules out).
_LOOK_BACK = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class Visit:
    """What the loop cares about in a booking's state."""

    client_id: int | None
    visit_at: datetime | None
    staff_name: str
    service_ids: tuple[str, ...]
    cancelled: bool
    completed: bool

    @classmethod
    def of(cls, booking: Booking) -> Visit:
        return cls(
            client_id=booking.client_id,
            visit_at=booking.visit_at,
            staff_name=booking.staff_name,
            service_ids=tuple(
                str(line.get("id") or line.get("title") or "")
                for line in booking.services or []
                if isinstance(line, dict)
            ),
            # YClients marks a cancellation by deleting the record, or (a token that may not
            # delete) by attendance -1.
            cancelled=booking.deleted or booking.attendance == -1,
            completed=booking.attendance == 1 and not booking.deleted,
        )

    @property
    def fingerprint(self) -> str:
        return kinds.fingerprint(self.visit_at, self.staff_name, self.service_ids)

    def same_appointment(self, other: Visit) -> bool:
        return (self.visit_at, self.staff_name, self.service_ids) == (
            other.visit_at,
            other.staff_name,
            other.service_ids,
        )


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    key: str
    due_at: datetime
    payload: Mapping[str, Any] | None = None


# --- time ---------------------------------------------------------------------------------


def local_moment(day: date, at: time, settings: LoopSettings) -> datetime:
    return datetime.combine(day, at, tzinfo=settings.tz).astimezone(UTC)


def in_quiet(moment: datetime, settings: LoopSettings) -> bool:
    return out_of_quiet(moment, settings) != moment


def out_of_quiet(moment: datetime, settings: LoopSettings) -> datetime:
    """`moment`, or the end of the salon's quiet hours when it falls inside them."""
    if settings.quiet is None:
        return moment
    start, end = settings.quiet
    local = moment.astimezone(settings.tz)
    now = local.time().replace(tzinfo=None)
    if start < end:
        if not start <= now < end:
            return moment
        end_day = local.date()
    else:  # across midnight, 21:00-09:00
        if end <= now < start:
            return moment
        end_day = local.date() + timedelta(days=1) if now >= start else local.date()
    return local_moment(end_day, end, settings)


# --- what a booking calls for -------------------------------------------------------------


def reminders_for(booking_id: int, visit_at: datetime, settings: LoopSettings) -> list[Planned]:
    """The reminders and the silent-client alert of one visit, whatever the time now."""
    planned: list[Planned] = []
    if settings.day_before_at is not None:
        local_day = visit_at.astimezone(settings.tz).date()
        due = out_of_quiet(
            local_moment(local_day - timedelta(days=1), settings.day_before_at, settings), settings
        )
        if due < visit_at:
            key = kinds.per_visit_key(kinds.DAY_BEFORE, booking_id, visit_at)
            planned.append(Planned(kinds.DAY_BEFORE, key, due))
    if settings.hours_before:
        due = out_of_quiet(visit_at - timedelta(hours=settings.hours_before), settings)
        if due < visit_at:
            key = kinds.per_visit_key(kinds.HOURS_BEFORE, booking_id, visit_at)
            planned.append(Planned(kinds.HOURS_BEFORE, key, due))
    if planned and settings.silent_alert_hours_before:
        due = visit_at - timedelta(hours=settings.silent_alert_hours_before)
        # Only after a reminder could have been answered.
        if due > min(p.due_at for p in planned):
            key = kinds.per_visit_key(kinds.SILENT_ALERT, booking_id, visit_at)
            planned.append(Planned(kinds.SILENT_ALERT, key, due))
    return planned


def review_due(visit_at: datetime, settings: LoopSettings, now: datetime) -> datetime | None:
    """When to ask about a completed visit; None when it is off or too late to ask."""
    if settings.review_delay_hours is None:
        return None
    due = visit_at + timedelta(hours=settings.review_delay_hours)
    if due < now - REVIEW_STALE:
        return None
    return out_of_quiet(max(due, now), settings)


def notice_for(
    booking_id: int, before: Visit | None, after: Visit, now: datetime
) -> Planned | None:
    """The notice a change from `before` to `after` calls for, if any."""
    if after.client_id is None or after.visit_at is None or after.visit_at <= now:
        return None
    kind = None
    payload: dict[str, Any] = {}
    if before is None or (before.cancelled and not after.cancelled):
        kind = None if after.cancelled else kinds.NOTICE_CREATED
    elif after.cancelled and not before.cancelled:
        kind = kinds.NOTICE_CANCELLED
    elif not after.cancelled and not after.same_appointment(before):
        kind = kinds.NOTICE_MOVED
        payload = {
            "from_at": before.visit_at.isoformat() if before.visit_at else None,
            "from_staff": before.staff_name,
        }
    if kind is None:
        return None
    return Planned(kind, kinds.notice_key(kind, booking_id, after.fingerprint), now, payload)


# --- the batch ----------------------------------------------------------------------------


async def plan_bookings(
    conn: BaseDBAsyncClient,
    company: Company,
    bookings: Sequence[Booking],
    before: Mapping[int, Visit],
    *,
    now: datetime,
    notices: bool = True,
    reviews: bool = True,
) -> None:
    """Bring the scheduled messages of `bookings` (just written, in the caller's transaction)
    to what their state calls for. `before` holds the state of each booking that existed
    before this change, by booking id. A salon's first sync (the backfill) passes
    `notices=False, reviews=False`: nothing about what happened before the salon joined."""
    horizon = now - _LOOK_BACK
    relevant = [
        b
        for b in bookings
        if b.client_id is not None and b.visit_at is not None and b.visit_at > horizon
    ]
    if not relevant:
        return
    settings = loop(company)
    wanted: dict[int, list[Planned]] = {}
    for booking in relevant:
        after = Visit.of(booking)
        rows: list[Planned] = []
        if notices:
            notice = notice_for(booking.id, before.get(booking.id), after, now)
            if notice is not None:
                rows.append(notice)
        if booking.visit_at is not None and not after.cancelled:
            if booking.visit_at > now and not after.completed:
                rows.extend(reminders_for(booking.id, booking.visit_at, settings))
            if after.completed and reviews:
                due = review_due(booking.visit_at, settings, now)
                if due is not None:
                    rows.append(Planned(kinds.REVIEW, kinds.review_key(booking.id), due))
        wanted[booking.id] = rows
    await _reconcile(conn, company, relevant, wanted, now, known=set(before))


async def _reconcile(
    conn: BaseDBAsyncClient,
    company: Company,
    bookings: Sequence[Booking],
    wanted: Mapping[int, list[Planned]],
    now: datetime,
    *,
    known: set[int],
) -> None:
    """Make the stored rows of `bookings` match `wanted`: create what is missing (when its
    time is still ahead), move a pending row whose time changed, bring back one dropped
    earlier that is wanted again, drop pending rows nobody wants any more. Notices and
    reviews are only ever added here (a notice already pending is not superseded by a later
    notice of a created booking — it tells the booking as it is when it goes out)."""
    # A booking created by this change has no rows yet: only the others are read.
    old_ids = [b.id for b in bookings if b.id in known]
    existing = (
        await ScheduledMessage.filter(booking_id__in=old_ids)
        .using_db(conn)
        .values_list("id", "booking_id", "kind", "key", "status", "due_at")
        if old_ids
        else []
    )
    by_key = {row[3]: row for row in existing}
    pending_notices: dict[int, list[tuple[int, str]]] = {}
    for row_id, booking_id, kind, _key, status, _due in existing:
        if kind in kinds.NOTICES and status == ScheduledStatus.PENDING:
            pending_notices.setdefault(booking_id, []).append((row_id, kind))
    to_create: list[_New] = []
    to_drop: list[int] = []
    to_move: list[tuple[int, datetime]] = []
    for booking in bookings:
        rows = _without_superseded(
            wanted.get(booking.id, []), pending_notices.get(booking.id, []), to_drop
        )
        for planned in rows:
            stored = by_key.get(planned.key)
            if stored is None:
                if planned.due_at >= now or planned.kind in kinds.NOTICES:
                    to_create.append((booking, planned))
            elif planned.kind in kinds.PER_VISIT and _moves(stored[4], stored[5], planned, now):
                to_move.append((stored[0], planned.due_at))
        keys = {p.key for p in rows}
        to_drop.extend(
            row_id
            for row_id, b_id, kind, key, status, _due in existing
            if b_id == booking.id
            and status == ScheduledStatus.PENDING
            and kind in (*kinds.PER_VISIT, kinds.REVIEW)
            and key not in keys
        )
    if to_create:
        await _insert(conn, company, to_create)
    if to_drop:
        await (
            ScheduledMessage.filter(id__in=to_drop, status=ScheduledStatus.PENDING)
            .using_db(conn)
            .update(status=ScheduledStatus.DROPPED, last_error="no longer wanted")
        )
    for row_id, due in to_move:
        await (
            ScheduledMessage.filter(id=row_id)
            .using_db(conn)
            .update(due_at=due, status=ScheduledStatus.PENDING, last_error=None)
        )


# A batch's new rows in one statement (the ORM's bulk insert sends them one by one); a key
# another applier has just planned is left alone.
_INSERT = (
    "INSERT INTO scheduled_message (company_id, booking_id, client_id, kind, key, due_at, "
    "status, attempts, payload, created_at) "
    "SELECT t.company_id, t.booking_id, t.client_id, t.kind, t.key, t.due_at, $7, 0, "
    "t.payload::jsonb, $8::timestamptz "
    "FROM unnest($1::int[], $2::int[], $3::int[], $4::varchar[], $5::varchar[], "
    "$6::timestamptz[], $9::text[]) "
    "AS t(company_id, booking_id, client_id, kind, key, due_at, payload) "
    "ON CONFLICT (key) DO NOTHING"
)


# A row to add: the booking it is for and what it is (not a model instance: building those
# cost the planning more than the database did).
_New = tuple[Booking, Planned]


async def _insert(conn: BaseDBAsyncClient, company: Company, rows: Sequence[_New]) -> None:
    if conn.capabilities.dialect != "postgres":
        await ScheduledMessage.bulk_create(
            [
                ScheduledMessage(
                    company_id=company.id,
                    booking_id=booking.id,
                    client_id=booking.client_id,
                    kind=planned.kind,
                    key=planned.key,
                    due_at=planned.due_at,
                    payload=dict(planned.payload or {}),
                )
                for booking, planned in rows
            ],
            ignore_conflicts=True,
            using_db=conn,
        )
        return
    await conn.execute_query(
        _INSERT,
        [
            [company.id] * len(rows),
            [b.id for b, _p in rows],
            [b.client_id for b, _p in rows],
            [p.kind for _b, p in rows],
            [p.key for _b, p in rows],
            [p.due_at for _b, p in rows],
            ScheduledStatus.PENDING.value,
            timezone.now(),
            [json.dumps(p.payload, separators=(",", ":")) if p.payload else "{}" for _b, p in rows],
        ],
    )


def _moves(status: str, due: datetime, planned: Planned, now: datetime) -> bool:
    """A stored per-visit row to bring to `planned`: pending for another time (the salon's
    settings changed), or dropped earlier and wanted again (the visit moved back)."""
    if status == ScheduledStatus.PENDING:
        return due != planned.due_at
    return status == ScheduledStatus.DROPPED and planned.due_at >= now


def _without_superseded(
    planned: list[Planned], pending: list[tuple[int, str]], to_drop: list[int]
) -> list[Planned]:
    return [
        kept
        for p in planned
        if (kept := _against_pending(p, pending, to_drop) if p.kind in kinds.NOTICES else p)
        is not None
    ]


def _against_pending(
    planned: Planned, pending: list[tuple[int, str]], to_drop: list[int]
) -> Planned | None:
    """A new notice beside the booking's notices not yet sent: a booking created and changed
    before its first notice went out gets that one notice (it tells the current state); one
    created and cancelled before then gets none; a later move supersedes an earlier one."""
    if not pending:
        return planned
    created = [row_id for row_id, kind in pending if kind == kinds.NOTICE_CREATED]
    if planned.kind == kinds.NOTICE_MOVED:
        if created:
            return None
        to_drop.extend(row_id for row_id, kind in pending if kind == kinds.NOTICE_MOVED)
        return planned
    if planned.kind == kinds.NOTICE_CANCELLED:
        to_drop.extend(row_id for row_id, _kind in pending)
        return None if created else planned
    return planned


# --- the weekly digest ---------------------------------------------------------------------


def next_digest(settings: LoopSettings, now: datetime) -> datetime | None:
    """The next digest time at or after `now` (this week's, or next week's when it passed)."""
    if settings.digest_at is None:
        return None
    weekday, at = settings.digest_at
    local_today = now.astimezone(settings.tz).date()
    day = local_today + timedelta(days=(weekday - local_today.weekday()) % 7)
    due = local_moment(day, at, settings)
    if due < now:
        due = local_moment(day + timedelta(days=7), at, settings)
    return due


async def plan_digests(now: datetime, companies: Iterable[Company] | None = None) -> int:
    """Plan each active salon's next weekly digest (one row per salon and week); a salon
    whose digest time moved has its pending row moved. Returns how many rows were added."""
    everyone = companies is None
    if companies is None:
        companies = await Company.filter(integration_status=IntegrationStatus.ACTIVE)
    companies = list(companies)
    rows: list[ScheduledMessage] = []
    for company in companies:
        settings = loop(company)
        due = next_digest(settings, now)
        if due is None:
            continue
        year, week, _day = due.astimezone(settings.tz).isocalendar()
        rows.append(
            ScheduledMessage(
                company_id=company.id,
                kind=kinds.DIGEST,
                key=kinds.digest_key(company.id, year, week),
                due_at=due,
            )
        )
    keys = [r.key for r in rows]
    # A digest turned off or moved: the pending row for the old time goes.
    gone = ScheduledMessage.filter(kind=kinds.DIGEST, status=ScheduledStatus.PENDING)
    if not everyone:
        gone = gone.filter(company_id__in=[c.id for c in companies])
    await gone.exclude(key__in=keys).update(
        status=ScheduledStatus.DROPPED, last_error="the digest time changed"
    )
    if not rows:
        return 0
    known = {
        key: (due, status)
        for key, due, status in await ScheduledMessage.filter(key__in=keys).values_list(
            "key", "due_at", "status"
        )
    }
    for row in rows:
        stored = known.get(row.key)
        if stored is not None and stored[1] == ScheduledStatus.PENDING and stored[0] != row.due_at:
            await ScheduledMessage.filter(key=row.key, status=ScheduledStatus.PENDING).update(
                due_at=row.due_at
            )
    fresh = [r for r in rows if r.key not in known]
    if fresh:
        await ScheduledMessage.bulk_create(fresh, ignore_conflicts=True)
    return len(fresh)


async def replan_company(company: Company, now: datetime) -> None:
    """After the salon's loop settings changed: every upcoming booking's rows follow them."""
    bookings = await Booking.filter(
        company_id=company.id, client_id__isnull=False, visit_at__gt=now - _LOOK_BACK
    )
    async with in_transaction() as conn:
        # The state did not change: `before` is the state itself, so no notice is planned.
        before = {b.id: Visit.of(b) for b in bookings}
        await plan_bookings(conn, company, bookings, before, now=now, notices=False)
    await plan_digests(now, [company])
