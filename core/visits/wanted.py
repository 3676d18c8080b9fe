"""Checked when a row is sent, not only when it was planned: whether it is still wanted (the
client's say, the salon's settings and the booking as they are now), and whether now is inside
the salon's quiet hours for it."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.models import IntegrationStatus, ScheduledStatus
from core.salon_settings import LoopSettings, loop
from core.visits import kinds
from core.visits.planning import Visit, in_quiet, out_of_quiet
from core.visits.store import Due, reminders_of_visit

# Kinds that keep to the salon's quiet hours (a notice answers a change the client just made
# or should know about at once; the admins' alert is for the staff on duty).
QUIET = (*kinds.REMINDERS, kinds.REVIEW)


async def unwanted(due: Due, now: datetime) -> str | None:
    """Why the row should not be sent any more, or None when it should."""
    row, company = due.row, due.company
    if company.integration_status in (IntegrationStatus.UNINSTALLED, IntegrationStatus.FROZEN):
        return f"the salon is {company.integration_status}"
    settings = loop(company)
    said = None if row.kind in kinds.TO_ADMINS else _client_said_no(due)
    if said is not None:
        return said
    if _turned_off(row.kind, settings):
        return "the salon turned it off"
    if row.kind == kinds.DIGEST:
        return None
    booking = due.booking
    if booking is None or booking.visit_at is None:
        return "the booking is gone"
    visit = Visit.of(booking)
    if row.kind == kinds.REVIEW:
        return None if visit.completed else "the visit is no longer marked done"
    if row.kind == kinds.NOTICE_CANCELLED:
        return None if visit.cancelled else "the booking was restored"
    if visit.cancelled:
        return "the booking was cancelled"
    if booking.visit_at <= now:
        return "the visit has begun"
    if row.kind == kinds.NOTICE_MOVED and not row.key.endswith(visit.fingerprint):
        return "a later change is told instead"
    if row.kind in kinds.PER_VISIT and kinds.visit_of_key(row.key) != kinds.epoch(booking.visit_at):
        return "the visit moved"
    if row.kind == kinds.SILENT_ALERT:
        return await _not_silent(booking.id, booking.visit_at)
    return None


def _client_said_no(due: Due) -> str | None:
    client = due.client
    if client is None:
        return "no client"
    if client.messages_off:
        return "the client asked for no messages"
    if due.row.kind in kinds.REMINDERS_OFF and client.reminders_off:
        return "the client turned reminders off"
    return None


def _turned_off(kind: str, settings: LoopSettings) -> bool:
    return {
        kinds.DAY_BEFORE: settings.day_before_at is None,
        kinds.HOURS_BEFORE: settings.hours_before is None,
        kinds.SILENT_ALERT: settings.silent_alert_hours_before is None,
        kinds.REVIEW: settings.review_delay_hours is None,
        kinds.DIGEST: settings.digest_at is None,
    }.get(kind, False)


async def _not_silent(booking_id: int, visit_at: datetime) -> str | None:
    reminders = await reminders_of_visit(booking_id, visit_at)
    if any(r.answer is not None for r in reminders):
        return "the client answered"
    if not any(r.status == ScheduledStatus.SENT for r in reminders):
        return "no reminder reached the client"
    return None


# A reminder claimed longer ago than this and still SENDING was lost to a crash.
_IN_FLIGHT = timedelta(minutes=10)


async def reminder_in_flight(due: Due, now: datetime) -> bool:
    """Whether a silent-client alert should wait a little: a reminder of the same visit is due
    or being sent right now (a dispatcher that was down sends them in the same round)."""
    booking = due.booking
    if due.row.kind != kinds.SILENT_ALERT or booking is None or booking.visit_at is None:
        return False
    reminders = await reminders_of_visit(booking.id, booking.visit_at)
    if any(r.answer is not None for r in reminders):
        return False  # answered: the alert is dropped, nothing to wait for
    for reminder in reminders:
        if reminder.status == ScheduledStatus.PENDING and reminder.due_at <= now:
            return True
        claimed = reminder.claimed_at
        if reminder.status == ScheduledStatus.SENDING and claimed and now - claimed < _IN_FLIGHT:
            return True
    return False


def later_for_quiet(due: Due, now: datetime) -> datetime | None:
    """The end of the salon's quiet hours when `now` is inside them for this kind (a retry
    or a late dispatcher must not wake a client either)."""
    if due.row.kind not in QUIET:
        return None
    settings = loop(due.company)
    if not in_quiet(now, settings):
        return None
    return out_of_quiet(now, settings)
