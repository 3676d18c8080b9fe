"""The scheduled messages' states: claimed when due, then sent, retried, failed or dropped; and
what the client answered.

Claiming (`due_messages`) takes due pending rows — `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
replicas share the work and never take one row twice; SQLite has one process — and marks them
SENDING in the same transaction, which commits before anything is sent. A process that dies
after that leaves the row SENDING, and nothing ever claims a SENDING row again: a message is
sent at most once. The price is that a crash between the claim and the send loses that one
message (docs/design.md, "The visit loop").
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core.models import Booking, Client, Company, ScheduledMessage, ScheduledStatus
from core.visits import kinds
from core.visits.planning import Visit

_ERROR_MAX = 2000


@dataclass(slots=True)
class Due:
    """A claimed row with what its handler needs, loaded for the whole batch at once."""

    row: ScheduledMessage
    company: Company
    booking: Booking | None
    client: Client | None


async def due_messages(
    now: datetime, *, limit: int = 100, kinds_known: Sequence[str] | None = None
) -> list[Due]:
    """Claim up to `limit` pending rows due by `now` (of `kinds_known` when given), oldest
    first: SENDING, attempts + 1, committed before this returns."""
    async with in_transaction() as conn:
        query = ScheduledMessage.filter(status=ScheduledStatus.PENDING, due_at__lte=now)
        if kinds_known is not None:
            query = query.filter(kind__in=list(kinds_known))
        query = query.order_by("due_at").limit(limit)
        if conn.capabilities.dialect == "postgres":
            query = query.select_for_update(skip_locked=True)
        rows = await query.using_db(conn)
        if not rows:
            return []
        await (
            ScheduledMessage.filter(id__in=[r.id for r in rows])
            .using_db(conn)
            .update(status=ScheduledStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1)
        )
    for row in rows:
        row.status = ScheduledStatus.SENDING
        row.claimed_at = now
        row.attempts += 1
    companies = {c.id: c for c in await Company.filter(id__in={r.company_id for r in rows})}
    booking_ids = {r.booking_id for r in rows if r.booking_id is not None}
    client_ids = {r.client_id for r in rows if r.client_id is not None}
    bookings = {b.id: b for b in await Booking.filter(id__in=booking_ids)} if booking_ids else {}
    clients = {c.id: c for c in await Client.filter(id__in=client_ids)} if client_ids else {}
    return [
        Due(
            row,
            companies[row.company_id],
            bookings.get(row.booking_id) if row.booking_id is not None else None,
            clients.get(row.client_id) if row.client_id is not None else None,
        )
        for row in rows
    ]


async def mark_sent(row: ScheduledMessage, now: datetime, channel: str | None = None) -> None:
    await ScheduledMessage.filter(id=row.id).update(
        status=ScheduledStatus.SENT, sent_at=now, channel=channel, last_error=None
    )
    row.status, row.sent_at, row.channel = ScheduledStatus.SENT, now, channel


async def mark_dropped(row: ScheduledMessage, why: str) -> None:
    await ScheduledMessage.filter(id=row.id).update(
        status=ScheduledStatus.DROPPED, last_error=why[:_ERROR_MAX]
    )
    row.status = ScheduledStatus.DROPPED


async def mark_failed(row: ScheduledMessage, why: str) -> None:
    await ScheduledMessage.filter(id=row.id).update(
        status=ScheduledStatus.FAILED, last_error=why[:_ERROR_MAX]
    )
    row.status = ScheduledStatus.FAILED


async def mark_retry(
    row: ScheduledMessage, at: datetime, why: str, *, attempt_spent: bool = True
) -> None:
    """Back to pending, due again at `at` (the same row: still at most once). A wait that is
    no failure of the message (quiet hours, flood control) gives its attempt back."""
    attempts = row.attempts if attempt_spent else max(row.attempts - 1, 0)
    await ScheduledMessage.filter(id=row.id).update(
        status=ScheduledStatus.PENDING, due_at=at, attempts=attempts, last_error=why[:_ERROR_MAX]
    )
    row.status, row.due_at, row.attempts = ScheduledStatus.PENDING, at, attempts


async def answer(row_id: int, value: str, *, now: datetime | None = None) -> bool:
    """Record the client's answer to a reminder or notice (`confirmed`, `cancel`, `move`, a
    rating…). True only for the first answer: a button pressed twice acts once. An answered
    reminder keeps the silent-client alert from going out."""
    updated = await ScheduledMessage.filter(id=row_id, answer__isnull=True).update(
        answer=value[:16], answered_at=now or datetime.now(UTC)
    )
    return updated == 1


async def reopen(row_id: int, value: str) -> None:
    """Take back an answer whose action failed (YClients refused the confirm): the reminder is
    answerable again."""
    await ScheduledMessage.filter(id=row_id, answer=value[:16]).update(
        answer=None, answered_at=None
    )


async def note_own_change(
    booking_id: int,
    change: str,
    *,
    visit_at: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """A change the client made through the bot (`cancelled`, or `moved` to `visit_at`): the
    bot's own answer acknowledged it, so the webhook that echoes it sends no notice. Call it
    before the change is made in YClients (the echo may come back at once). `confirmed` sends
    no notice anyway and needs no call."""
    kind = {"cancelled": kinds.NOTICE_CANCELLED, "moved": kinds.NOTICE_MOVED}.get(change)
    booking = await Booking.get_or_none(id=booking_id)
    if kind is None or booking is None:
        return
    state = Visit.of(booking)
    if visit_at is not None:
        state = Visit(
            state.client_id,
            visit_at,
            state.staff_name,
            state.service_ids,
            state.cancelled,
            state.completed,
        )
    # The row the echo's notice would be: there already, and never to be sent.
    with contextlib.suppress(IntegrityError):
        await ScheduledMessage.create(
            company_id=booking.company_id,
            booking_id=booking.id,
            client_id=booking.client_id,
            kind=kind,
            key=kinds.notice_key(kind, booking.id, state.fingerprint),
            due_at=now or datetime.now(UTC),
            status=ScheduledStatus.DROPPED,
            last_error="made through the bot",
        )


async def reminders_of_visit(booking_id: int, visit_at: datetime) -> list[ScheduledMessage]:
    """The reminder rows of one visit time of a booking."""
    keys = [kinds.per_visit_key(kind, booking_id, visit_at) for kind in kinds.REMINDERS]
    return await ScheduledMessage.filter(key__in=keys)


async def stuck_sending(now: datetime, older_than: timedelta) -> int:
    """How many rows a crash left SENDING (never sent again; counted for the metrics)."""
    return await ScheduledMessage.filter(
        status=ScheduledStatus.SENDING, claimed_at__lt=now - older_than
    ).count()
