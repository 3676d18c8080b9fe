"""The visit loop's planning: what a booking's change leaves in scheduled_message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import visits
from core.bookings import apply_records
from core.models import Booking, Company, ScheduledMessage, ScheduledStatus, SyncState
from core.salon_settings import change, loop
from core.visits import kinds
from core.visits.planning import next_digest, out_of_quiet, reminders_for
from tests.visit_support import NOW, record


async def salon(**settings: str) -> Company:
    company = await Company.create(yclients_id=555, hook_token="hook")
    if settings:
        await change(company, settings, actor="test")
    return company


async def rows(*, status: ScheduledStatus | None = None) -> dict[str, ScheduledMessage]:
    query = ScheduledMessage.all()
    if status is not None:
        query = query.filter(status=status)
    return {r.key: r for r in await query}


def kinds_of(found: dict[str, ScheduledMessage]) -> list[str]:
    return sorted(r.kind for r in found.values())


async def test_a_new_booking_plans_its_notice_reminders_and_silent_alert(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record()], now=NOW)
    found = await rows()
    assert kinds_of(found) == sorted(
        [kinds.NOTICE_CREATED, kinds.DAY_BEFORE, kinds.HOURS_BEFORE, kinds.SILENT_ALERT]
    )
    due = {r.kind: r.due_at for r in found.values()}
    # 18:00 Moscow the day before, 2 h and 3 h before 12:00 Moscow.
    assert due[kinds.DAY_BEFORE] == datetime(2026, 11, 19, 15, 0, tzinfo=UTC)
    assert due[kinds.HOURS_BEFORE] == datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
    assert due[kinds.SILENT_ALERT] == datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    assert due[kinds.NOTICE_CREATED] == NOW


async def test_a_replayed_change_plans_nothing_more(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record()], now=NOW)
    first = await rows()
    await apply_records(company, [record()], now=NOW + timedelta(minutes=1))
    await apply_records(company, [record(), record()], now=NOW + timedelta(minutes=2))
    assert (await rows()).keys() == first.keys()


async def test_a_moved_booking_moves_its_reminders_and_is_told_once(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record()], now=NOW)
    # The created notice went out before the move.
    await ScheduledMessage.filter(kind=kinds.NOTICE_CREATED).update(status=ScheduledStatus.SENT)
    moved = record(at="2026-11-21T15:00:00+03:00", last_change_date="2026-11-16T12:30:00+0300")
    await apply_records(company, [moved], now=NOW + timedelta(hours=1))
    await apply_records(company, [moved], now=NOW + timedelta(hours=2))
    pending = await rows(status=ScheduledStatus.PENDING)
    assert kinds_of(pending) == sorted(
        [kinds.NOTICE_MOVED, kinds.DAY_BEFORE, kinds.HOURS_BEFORE, kinds.SILENT_ALERT]
    )
    hours = next(r for r in pending.values() if r.kind == kinds.HOURS_BEFORE)
    assert hours.due_at == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    notice = next(r for r in pending.values() if r.kind == kinds.NOTICE_MOVED)
    assert notice.payload["from_at"].startswith("2026-11-20T09:00")
    dropped = await rows(status=ScheduledStatus.DROPPED)
    assert kinds_of(dropped) == sorted([kinds.DAY_BEFORE, kinds.HOURS_BEFORE, kinds.SILENT_ALERT])
    # Moved back: the first time's rows come back, not copies of them.
    back = record(last_change_date="2026-11-16T13:00:00+0300")
    await apply_records(company, [back], now=NOW + timedelta(hours=3))
    assert await ScheduledMessage.filter(kind=kinds.DAY_BEFORE).count() == 2
    day_before = await ScheduledMessage.filter(
        kind=kinds.DAY_BEFORE, status=ScheduledStatus.PENDING
    )
    assert [r.due_at for r in day_before] == [datetime(2026, 11, 19, 15, 0, tzinfo=UTC)]


async def test_a_cancelled_booking_drops_its_reminders_and_is_told(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record()], now=NOW)
    await ScheduledMessage.filter(kind=kinds.NOTICE_CREATED).update(status=ScheduledStatus.SENT)
    await apply_records(
        company,
        [{"id": 1, "deleted": True, "last_change_date": "2026-11-16T12:00:00+0300"}],
        now=NOW + timedelta(hours=1),
    )
    pending = await rows(status=ScheduledStatus.PENDING)
    assert kinds_of(pending) == [kinds.NOTICE_CANCELLED]
    assert (
        await ScheduledMessage.filter(
            kind__in=kinds.PER_VISIT, status=ScheduledStatus.DROPPED
        ).count()
        == 3
    )


async def test_created_and_cancelled_before_the_first_notice_tells_nothing(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record()], now=NOW)
    cancelled = record(deleted=True, last_change_date="2026-11-16T12:00:00+0300")
    await apply_records(company, [cancelled], now=NOW + timedelta(seconds=5))
    assert await rows(status=ScheduledStatus.PENDING) == {}


async def test_a_record_in_the_past_plans_nothing(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record(at="2026-11-15T12:00:00+03:00")], now=NOW)
    assert await rows() == {}


async def test_the_first_sync_backfill_gets_reminders_but_no_notices(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record()], now=NOW, backfill=True)
    assert kinds.NOTICE_CREATED not in kinds_of(await rows())
    assert kinds.DAY_BEFORE in kinds_of(await rows())
    assert await SyncState.filter(company=company).count() == 0


async def test_a_reminder_whose_time_passed_when_booked_is_not_planned(orm: str) -> None:
    company = await salon()
    # Booked at 12:00 Moscow for 13:30 the same day: 2 h before and 18:00 the day before passed.
    await apply_records(company, [record(at="2026-11-16T13:30:00+03:00")], now=NOW)
    assert kinds_of(await rows()) == [kinds.NOTICE_CREATED]


async def test_quiet_hours_move_a_reminder_to_their_end_while_the_visit_is_ahead(
    orm: str,
) -> None:
    company = await salon(reminder_day_before_at="22:30")
    settings = loop(company)
    visit = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)  # 10:30 Moscow
    planned = {p.kind: p.due_at for p in reminders_for(1, visit, settings)}
    # 22:30 the day before is quiet: 09:00 the day of the visit. 08:30 (2 h before): 09:00 too.
    assert planned[kinds.DAY_BEFORE] == datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    assert planned[kinds.HOURS_BEFORE] == datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    # A visit at 08:30 Moscow: the end of the quiet hours is after it, so no reminder then.
    early = datetime(2026, 11, 20, 5, 30, tzinfo=UTC)
    assert reminders_for(1, early, settings) == []
    # Outside quiet hours nothing moves; with them off, nothing does.
    noon = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert out_of_quiet(noon, settings) == noon
    await change(company, {"quiet_hours": "off"}, actor="test")
    late = datetime(2026, 11, 19, 20, 0, tzinfo=UTC)
    assert out_of_quiet(late, loop(company)) == late


async def test_a_completed_visit_is_asked_about_after_the_delay_never_at_night(
    orm: str,
) -> None:
    company = await salon(review_delay_hours="3")
    visit = record(at="2026-11-16T19:00:00+03:00", attendance=1)
    await apply_records(company, [visit], now=datetime(2026, 11, 16, 17, 0, tzinfo=UTC))
    review = await ScheduledMessage.get(kind=kinds.REVIEW)
    # 22:00 is quiet: 09:00 the next morning.
    assert review.due_at == datetime(2026, 11, 17, 6, 0, tzinfo=UTC)
    # Reapplied: still one question.
    await apply_records(company, [visit], now=datetime(2026, 11, 16, 18, 0, tzinfo=UTC))
    assert await ScheduledMessage.filter(kind=kinds.REVIEW).count() == 1


async def test_settings_changes_move_pending_reminders(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record()], now=NOW)
    await change(
        company,
        {"reminder_day_before_at": "19:00", "reminder_hours_before": "0"},
        actor="t",
        now=NOW,
    )
    pending = await rows(status=ScheduledStatus.PENDING)
    day_before = next(r for r in pending.values() if r.kind == kinds.DAY_BEFORE)
    assert day_before.due_at == datetime(2026, 11, 19, 16, 0, tzinfo=UTC)
    assert kinds.HOURS_BEFORE not in kinds_of(pending)


async def test_own_change_through_the_bot_sends_no_notice_on_its_echo(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record()], now=NOW)
    await ScheduledMessage.filter(kind=kinds.NOTICE_CREATED).update(status=ScheduledStatus.SENT)
    booking = await Booking.get(yclients_record_id=1)
    await visits.note_own_change(booking.id, "cancelled", now=NOW)
    await apply_records(
        company,
        [{"id": 1, "deleted": True, "last_change_date": "2026-11-16T12:00:00+0300"}],
        now=NOW + timedelta(hours=1),
    )
    assert await rows(status=ScheduledStatus.PENDING) == {}


async def test_answer_counts_once_and_reopens(orm: str) -> None:
    company = await salon()
    await apply_records(company, [record()], now=NOW)
    row = await ScheduledMessage.get(kind=kinds.DAY_BEFORE)
    assert await visits.answer(row.id, "come", now=NOW)
    assert not await visits.answer(row.id, "come", now=NOW)
    await visits.reopen(row.id, "come")
    assert await visits.answer(row.id, "cancel", now=NOW)


async def test_weekly_digest_planned_once_per_salon_and_week(orm: str) -> None:
    company = await salon(digest_at="tue 10:00")
    from core.models import IntegrationStatus

    await Company.filter(id=company.id).update(integration_status=IntegrationStatus.ACTIVE)
    assert await visits.plan_digests(NOW) == 1
    assert await visits.plan_digests(NOW + timedelta(minutes=5)) == 0
    digest = await ScheduledMessage.get(kind=kinds.DIGEST, status=ScheduledStatus.PENDING)
    assert digest.due_at == datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
    assert next_digest(loop(company), datetime(2026, 11, 17, 8, 0, tzinfo=UTC)) == datetime(
        2026, 11, 24, 7, 0, tzinfo=UTC
    )
