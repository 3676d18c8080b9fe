"""A client's answer to a reminder, carried to YClients once.

The answer lives on the reminder's row (`ScheduledMessage.answer`). Before YClients is called
the row is claimed with one conditional UPDATE (`confirming`/`cancelling`), so a second press
of the same button — or the same press delivered twice, or by two replicas — finds the claim
and calls nothing. The claim turns into the answer (`confirmed`/`cancelled`) when YClients
agreed, and is released when it failed: the reminder stays answerable.

A visit has two reminders (the day before, hours before) and may have had a notice with the
same buttons: the answer given to one holds for the others, so confirming on the second does
not confirm twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tortoise.expressions import Q

from core.models import Booking, BookingStatus, Company, ScheduledMessage
from core.visits import kinds
from core.visits.store import note_own_change
from core.yclients import Forbidden, NotFound, YClientsClient, YClientsError

log = logging.getLogger(__name__)

# ScheduledMessage.answer of a reminder.
CONFIRMING = "confirming"
CONFIRMED = "confirmed"
CANCELLING = "cancelling"
CANCELLED = "cancelled"
MOVE = "move"
# Rows that can be answered with I'll come / Cancel / Move: the reminders, and the notice of a
# new booking (it offers Cancel and Move).
ANSWERABLE_KINDS = (*kinds.REMINDERS, kinds.NOTICE_CREATED)
# YClients calls made while the client waits in the chat: short, few retries.
CALL_TIMEOUT = 10.0
CALL_RETRIES = 2


class Outcome(StrEnum):
    DONE = "done"
    # Answered so before (this reminder or the visit's other one): nothing was called.
    ALREADY = "already"
    # The visit is cancelled (here or in the salon): nothing to confirm or cancel.
    CANCELLED = "cancelled"
    # Another press is being carried to YClients right now.
    BUSY = "busy"
    # YClients refused or could not be reached; the reminder is answerable again.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    # How the record was cancelled: "delete", or "attendance" (-1) where the token may not.
    how: str | None = None
    error: str | None = None


async def _siblings(row: ScheduledMessage) -> list[ScheduledMessage]:
    if row.booking_id is None:
        return [row]
    return list(await ScheduledMessage.filter(booking_id=row.booking_id, kind__in=ANSWERABLE_KINDS))


async def _claim(row: ScheduledMessage, busy: str, *, unless: tuple[str, ...]) -> str | None:
    """Claim the row for `busy` unless its answer is one of `unless` or a claim; returns the
    answer it had (to restore on failure), or `busy` when it was taken already."""
    fresh = await ScheduledMessage.get(id=row.id)
    previous = fresh.answer
    if previous in (*unless, CONFIRMING, CANCELLING):
        return busy
    taken = await ScheduledMessage.filter(
        Q(answer__isnull=True) if previous is None else Q(answer=previous), id=row.id
    ).update(answer=busy)
    return previous if taken else busy


async def _settle(rows: list[ScheduledMessage], answer: str, now: datetime) -> None:
    ids = [r.id for r in rows]
    await ScheduledMessage.filter(id__in=ids).update(answer=answer, answered_at=now)


def _api(api: YClientsClient, company: Company) -> YClientsClient:
    return api.bounded(CALL_TIMEOUT, CALL_RETRIES).with_user_token(company.yclients_user_token)


async def _visit_state(row: ScheduledMessage) -> tuple[Booking | None, list[ScheduledMessage]]:
    booking = await Booking.get_or_none(id=row.booking_id) if row.booking_id else None
    return booking, await _siblings(row)


def _cancelled(booking: Booking | None, rows: list[ScheduledMessage]) -> bool:
    # As the loop reads a booking (core.visits.Visit.of): deleted, or attendance -1.
    if booking is None or booking.deleted or booking.attendance == -1:
        return True
    if booking.status is BookingStatus.CANCELLED:
        return True
    return any(r.answer == CANCELLED for r in rows)


async def confirm(
    row: ScheduledMessage, api: YClientsClient | None, *, now: datetime | None = None
) -> Result:
    """I'll come: attendance 2 in YClients, once per visit."""
    now = now or datetime.now(UTC)
    booking, rows = await _visit_state(row)
    if _cancelled(booking, rows):
        return Result(Outcome.CANCELLED)
    if any(r.answer == CONFIRMED for r in rows):
        if row.answer in (None, MOVE):
            await _settle([row], CONFIRMED, now)
        return Result(Outcome.ALREADY)
    if any(r.answer in (CONFIRMING, CANCELLING) for r in rows if r.id != row.id):
        return Result(Outcome.BUSY)
    previous = await _claim(row, CONFIRMING, unless=(CONFIRMED, CANCELLED))
    if previous == CONFIRMING:
        return Result(Outcome.BUSY)
    if booking is None:
        raise RuntimeError("a claimed reminder without a booking")
    company = await Company.get(id=row.company_id)
    try:
        if api is None:
            raise YClientsError("PUT", "/api/v1/record", advice="YClients is not configured")
        await _api(api, company).confirm_record(company.yclients_id, booking.yclients_record_id)
    except YClientsError as exc:
        log.warning("confirming record %s failed: %s", booking.yclients_record_id, exc)
        await _release(row, CONFIRMING, previous)
        return Result(Outcome.FAILED, error=str(exc))
    await _settle(rows, CONFIRMED, now)
    return Result(Outcome.DONE)


async def cancel(
    row: ScheduledMessage,
    api: YClientsClient | None,
    *,
    now: datetime | None = None,
) -> Result:
    """Cancel the visit in YClients: DELETE, or attendance -1 where the token may not delete.
    The loop is told first that the client made this change (its YClients echo may come at
    once), so no "booking cancelled" notice follows the bot's own answer."""
    now = now or datetime.now(UTC)
    booking, rows = await _visit_state(row)
    if _cancelled(booking, rows):
        mine = any(r.answer == CANCELLED for r in rows)
        return Result(Outcome.ALREADY if mine else Outcome.CANCELLED)
    if any(r.answer in (CONFIRMING, CANCELLING) for r in rows if r.id != row.id):
        return Result(Outcome.BUSY)
    previous = await _claim(row, CANCELLING, unless=(CANCELLED,))
    if previous == CANCELLING:
        return Result(Outcome.BUSY)
    if booking is None:
        raise RuntimeError("a claimed reminder without a booking")
    company = await Company.get(id=row.company_id)
    await note_own_change(booking.id, "cancelled", now=now)
    how = "delete"
    try:
        if api is None:
            raise YClientsError("DELETE", "/api/v1/record", advice="YClients is not configured")
        salon_api = _api(api, company)
        try:
            await salon_api.delete_record(company.yclients_id, booking.yclients_record_id)
        except Forbidden:
            how = "attendance"
            await salon_api.cancel_record(company.yclients_id, booking.yclients_record_id)
        except NotFound:
            # Deleted already (in the salon, or by a press whose answer was lost).
            how = "gone"
    except YClientsError as exc:
        log.warning("cancelling record %s failed: %s", booking.yclients_record_id, exc)
        await _release(row, CANCELLING, previous)
        return Result(Outcome.FAILED, error=str(exc))
    await _settle(rows, CANCELLED, now)
    return Result(Outcome.DONE, how=how)


async def move(row: ScheduledMessage, *, now: datetime | None = None) -> bool:
    """The client wants another time: noted on the reminder. True the first time (the salon's
    admins are told once), False when it was noted before."""
    taken = await ScheduledMessage.filter(
        Q(answer__isnull=True) | Q(answer=CONFIRMED), id=row.id
    ).update(answer=MOVE, answered_at=now or datetime.now(UTC))
    return bool(taken)


async def _release(row: ScheduledMessage, busy: str, previous: str | None) -> None:
    await ScheduledMessage.filter(id=row.id, answer=busy).update(answer=previous)
