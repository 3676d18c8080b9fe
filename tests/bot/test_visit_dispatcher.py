"""The visit loop end to end: bookings applied as the webhooks and the sync apply them, rows
planned, then sent by the real dispatcher on a clock the test moves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.dialog import actions
from bot.dialog.replies import Reply
from bot.outbound import Delivery, Outbound, Recipient
from bot.visits import Dispatcher, DispatchPolicy, Kinds, Paced, texts
from core import visits
from core.bookings import apply_record_by_id, apply_records
from core.clients import create_client
from core.models import (
    Client,
    Company,
    IntegrationStatus,
    ScheduledMessage,
    ScheduledStatus,
    Staff,
    StaffRole,
)
from core.visits import Due, kinds
from tests.fakes.clock import FakeClock
from tests.fakes.telegram import TOKEN, FakeBotAPI, TelegramTestChannel
from tests.visit_support import NOW, record

CLIENT_CHAT = 5001
ADMIN_CHAT = 7001


class Channel:
    """A ClientChannel that records what it delivered; `results` scripts other outcomes per
    address."""

    name = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Reply]]] = []
        self.results: dict[str, Delivery] = {}
        self.tries = 0

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        self.tries += 1
        address = to.addresses[self.name]
        result = self.results.get(address, Delivery.SENT)
        if result is Delivery.SENT:
            self.sent.append((address, list(replies)))
        return result

    def texts(self, address: str | int = CLIENT_CHAT) -> list[str]:
        return [r.text for a, replies in self.sent if a == str(address) for r in replies]


async def reminder(due: Due) -> Any:
    """A stand-in for the dialog's reminder (registered by the visit loop's dialog)."""
    return lambda locale: [Reply(f"reminder {due.row.kind}")]


def registry() -> Kinds:
    kinds_ = Kinds()
    texts.register(kinds_)
    kinds_.register(kinds.DAY_BEFORE, reminder)
    kinds_.register(kinds.HOURS_BEFORE, reminder)
    return kinds_


async def salon() -> Company:
    company = await Company.create(
        yclients_id=555,
        hook_token="hook",
        title="Салон «Ромашка»",
        integration_status=IntegrationStatus.ACTIVE,
        catalogue={"services": [], "staff": [], "address": "Москва, ул. Ленина, 1"},
        bookform_url="https://n1.yclients.com/",
    )
    await create_client(
        company, phone="+79991234567", name="Анна Петрова", telegram_user_id=CLIENT_CHAT
    )
    await Staff.create(
        company=company, telegram_user_id=ADMIN_CHAT, name="Админ", role=StaffRole.ADMIN
    )
    return company


@pytest.fixture
async def loop(orm: str) -> AsyncIterator[tuple[Company, Channel, FakeClock, Dispatcher]]:
    company = await salon()
    channel = Channel()
    clock = FakeClock(NOW)
    dispatcher = Dispatcher(Outbound({"telegram": channel}), registry(), clock=clock.clock())
    yield company, channel, clock, dispatcher


async def drain(dispatcher: Dispatcher) -> int:
    handled = 0
    while n := await dispatcher.round():
        handled += n
    return handled


async def at(clock: FakeClock, moment: datetime, dispatcher: Dispatcher) -> int:
    clock.moment = moment
    return await drain(dispatcher)


async def test_a_replayed_webhook_sends_one_notice_with_cancel_and_move(loop: Any) -> None:
    company, channel, _clock, dispatcher = loop
    for _ in range(3):
        await apply_record_by_id(company, record(), now=NOW)
    await drain(dispatcher)
    await apply_record_by_id(company, record(), now=NOW + timedelta(minutes=1))
    await drain(dispatcher)
    assert len(channel.sent) == 1
    _address, replies = channel.sent[0]
    text = replies[0].text
    assert "Салон «Ромашка»" in text and "пятница, 20 ноября, 12:00" in text
    assert "Стрижка" in text and "Ольга" in text and "Москва, ул. Ленина, 1" in text
    pressed = [b.action for row in replies[0].buttons for b in row]
    row = await ScheduledMessage.get(kind=kinds.NOTICE_CREATED)
    assert pressed == [actions.VisitAnswer(row.id, "cancel"), actions.VisitAnswer(row.id, "move")]
    assert row.status is ScheduledStatus.SENT and row.channel == "telegram"


async def test_a_moved_record_moves_its_reminder(loop: Any) -> None:
    company, channel, clock, dispatcher = loop
    await apply_records(company, [record()], now=NOW)
    moved = record(at="2026-11-21T15:00:00+03:00", last_change_date="2026-11-16T12:30:00+0300")
    await apply_records(company, [moved], now=NOW + timedelta(minutes=30))
    clock.moment = NOW + timedelta(minutes=30)
    await drain(dispatcher)
    # One notice: the booking as it is now (the first one had not gone out yet).
    assert len(channel.texts()) == 1 and "суббота, 21 ноября, 15:00" in channel.texts()[0]
    # The old day-before time (Thursday 18:00) passes with nothing sent...
    assert await at(clock, datetime(2026, 11, 19, 15, 30, tzinfo=UTC), dispatcher) == 0
    # ...and Friday 18:00, the day before the new time, sends it.
    await at(clock, datetime(2026, 11, 20, 15, 0, tzinfo=UTC), dispatcher)
    assert channel.texts()[-1] == f"reminder {kinds.DAY_BEFORE}"
    assert len(channel.texts()) == 2


async def test_a_cancelled_record_drops_its_reminders_and_tells_the_client(loop: Any) -> None:
    company, channel, clock, dispatcher = loop
    await apply_records(company, [record()], now=NOW)
    await drain(dispatcher)
    gone = {"id": 1, "deleted": True, "last_change_date": "2026-11-16T13:00:00+0300"}
    await apply_records(company, [gone], now=NOW + timedelta(hours=1))
    await at(clock, NOW + timedelta(hours=1), dispatcher)
    assert "отменена" in channel.texts()[-1]
    await at(clock, datetime(2026, 11, 20, 9, 0, tzinfo=UTC), dispatcher)
    assert len(channel.texts()) == 2
    assert not [t for t in channel.texts() if t.startswith("reminder")]


async def test_a_late_reminder_waits_for_the_end_of_the_quiet_hours(loop: Any) -> None:
    company, channel, clock, dispatcher = loop
    await apply_records(company, [record()], now=NOW)
    await drain(dispatcher)
    # The dispatcher was down from Thursday 17:00 until 23:30 Moscow: the 18:00 reminder waits.
    await at(clock, datetime(2026, 11, 19, 20, 30, tzinfo=UTC), dispatcher)
    assert len(channel.texts()) == 1
    row = await ScheduledMessage.get(kind=kinds.DAY_BEFORE)
    assert row.status is ScheduledStatus.PENDING
    assert row.due_at == datetime(2026, 11, 20, 6, 0, tzinfo=UTC)  # 09:00 Moscow
    await at(clock, datetime(2026, 11, 20, 6, 0, tzinfo=UTC), dispatcher)
    assert channel.texts()[-1] == f"reminder {kinds.DAY_BEFORE}"


async def test_a_record_in_the_past_and_the_first_sync_send_nothing(loop: Any) -> None:
    company, channel, _clock, dispatcher = loop
    await apply_records(company, [record(at="2026-11-10T12:00:00+03:00")], now=NOW)
    await apply_records(company, [record(2)], now=NOW, backfill=True)
    await drain(dispatcher)
    assert channel.sent == []
    assert await ScheduledMessage.filter(kind__in=kinds.NOTICES).count() == 0


async def test_the_silent_client_alert_goes_to_the_admins_once(loop: Any) -> None:
    company, channel, clock, dispatcher = loop
    await apply_records(company, [record()], now=NOW)
    await at(clock, datetime(2026, 11, 19, 15, 0, tzinfo=UTC), dispatcher)  # the day before
    assert channel.texts()[-1] == f"reminder {kinds.DAY_BEFORE}"
    # Friday 09:00 Moscow, 3 h before the visit: the client never answered.
    await at(clock, datetime(2026, 11, 20, 6, 0, tzinfo=UTC), dispatcher)
    alerts = channel.texts(ADMIN_CHAT)
    assert len(alerts) == 1
    assert "Анна Петрова" in alerts[0] and "+79991234567" in alerts[0]
    assert "Стрижка" in alerts[0] and "12:00" in alerts[0]
    await at(clock, datetime(2026, 11, 20, 8, 0, tzinfo=UTC), dispatcher)
    assert len(channel.texts(ADMIN_CHAT)) == 1


async def test_an_answered_reminder_keeps_the_admins_quiet(loop: Any) -> None:
    company, channel, clock, dispatcher = loop
    await apply_records(company, [record()], now=NOW)
    await at(clock, datetime(2026, 11, 19, 15, 0, tzinfo=UTC), dispatcher)
    row = await ScheduledMessage.get(kind=kinds.DAY_BEFORE)
    assert await visits.answer(row.id, "come")
    await at(clock, datetime(2026, 11, 20, 8, 0, tzinfo=UTC), dispatcher)
    assert channel.texts(ADMIN_CHAT) == []
    silent = await ScheduledMessage.get(kind=kinds.SILENT_ALERT)
    assert silent.status is ScheduledStatus.DROPPED


async def test_a_client_who_said_stop_gets_no_reminder_but_still_notices(loop: Any) -> None:
    company, channel, clock, dispatcher = loop
    await Client.all().update(reminders_off=True)
    await apply_records(company, [record()], now=NOW)
    await at(clock, datetime(2026, 11, 20, 8, 0, tzinfo=UTC), dispatcher)
    assert len(channel.texts()) == 1 and "записаны" in channel.texts()[0]
    await Client.all().update(messages_off=True)
    gone = {"id": 1, "deleted": True, "last_change_date": "2026-11-16T13:00:00+0300"}
    await apply_records(company, [gone], now=NOW + timedelta(hours=1))
    await at(clock, datetime(2026, 11, 20, 8, 30, tzinfo=UTC), dispatcher)
    assert len(channel.texts()) == 1


async def test_a_crash_after_the_claim_never_resends(loop: Any) -> None:
    company, channel, clock, dispatcher = loop
    await apply_records(company, [record()], now=NOW)
    # A replica claims the notice and dies before sending.
    claimed = await visits.due_messages(NOW)
    assert [d.row.kind for d in claimed] == [kinds.NOTICE_CREATED]
    await at(clock, NOW + timedelta(days=1), dispatcher)
    assert channel.sent == []
    row = await ScheduledMessage.get(kind=kinds.NOTICE_CREATED)
    assert row.status is ScheduledStatus.SENDING


async def test_a_blocked_bot_is_not_retried_forever(loop: Any) -> None:
    company, channel, clock, dispatcher = loop
    channel.results[str(CLIENT_CHAT)] = Delivery.GONE
    await apply_records(company, [record()], now=NOW)
    await drain(dispatcher)
    row = await ScheduledMessage.get(kind=kinds.NOTICE_CREATED)
    assert row.status is ScheduledStatus.FAILED
    client = await Client.get(telegram_user_id=CLIENT_CHAT)
    assert "telegram" in client.unreachable
    tries = channel.tries
    # The reminders find no channel: failed without another try.
    await at(clock, datetime(2026, 11, 20, 8, 0, tzinfo=UTC), dispatcher)
    assert channel.tries == tries
    statuses = {r.status for r in await ScheduledMessage.filter(kind__in=kinds.REMINDERS)}
    assert statuses == {ScheduledStatus.FAILED}


async def test_flood_control_retries_later_then_gives_up(loop: Any) -> None:
    company, channel, clock, dispatcher = loop
    channel.results[str(CLIENT_CHAT)] = Delivery.RETRY
    await apply_records(company, [record()], now=NOW)
    await drain(dispatcher)
    row = await ScheduledMessage.get(kind=kinds.NOTICE_CREATED)
    assert row.status is ScheduledStatus.PENDING and row.due_at > NOW
    for _ in range(10):
        clock.moment = row.due_at
        await drain(dispatcher)
        row = await ScheduledMessage.get(id=row.id)
        if row.status is not ScheduledStatus.PENDING:
            break
    assert row.status is ScheduledStatus.FAILED
    assert row.attempts == DispatchPolicy().max_attempts


async def test_settings_are_read_when_sending(loop: Any) -> None:
    company, _channel, clock, dispatcher = loop
    await apply_records(company, [record()], now=NOW)
    await drain(dispatcher)
    # Turned off after planning (without the re-planning a change does): not sent.
    await Company.filter(id=company.id).update(reminder_hours_before=0)
    await at(clock, datetime(2026, 11, 20, 7, 0, tzinfo=UTC), dispatcher)
    hours = await ScheduledMessage.get(kind=kinds.HOURS_BEFORE)
    assert hours.status is ScheduledStatus.DROPPED


@pytest.mark.postgres
async def test_two_dispatchers_send_every_reminder_once(orm: str) -> None:
    company = await salon()
    phones = [f"+7999100{n:04d}" for n in range(60)]
    for n, phone in enumerate(phones):
        await create_client(company, phone=phone, name=f"Клиент {n}", telegram_user_id=10_000 + n)
    records = [
        record(n + 1, client={"id": 2000 + n, "name": f"Клиент {n}", "phone": phones[n][1:]})
        for n in range(60)
    ]
    await apply_records(company, records, now=NOW)
    channel = Channel()
    clock = FakeClock(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
    policy = DispatchPolicy(batch_size=7)
    first, second = (
        Dispatcher(Outbound({"telegram": channel}), registry(), clock=clock.clock(), policy=policy)
        for _ in range(2)
    )
    await asyncio.gather(drain(first), drain(second))
    sent = [address for address, _replies in channel.sent if address != str(ADMIN_CHAT)]
    # 60 notices and 60 x 2 reminders (both due by now), each once.
    assert len(sent) == 180 and all(sent.count(a) == 3 for a in set(sent))
    client_rows = ScheduledMessage.filter(status=ScheduledStatus.SENT).exclude(
        kind=kinds.SILENT_ALERT
    )
    assert await client_rows.count() == 180
    # The silent-client alerts (those whose reminder had gone out first), each once too.
    alerts = await ScheduledMessage.filter(kind=kinds.SILENT_ALERT, status=ScheduledStatus.SENT)
    assert len(channel.texts(ADMIN_CHAT)) == len(alerts)
    assert first.outcomes["sent"] > 0 and second.outcomes["sent"] > 0


async def test_telegram_429_retry_after_holds_the_bot(orm: str) -> None:
    """Through the Telegram fake: a 429 makes the pacing hold the whole bot for its
    retry_after, and the message goes back to wait."""
    company = await salon()
    async with FakeBotAPI(chat_gap=60.0, retry_after=7) as api:
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
        clock = FakeClock(NOW)
        paced = Paced(TelegramTestChannel(bot), clock.clock())
        dispatcher = Dispatcher(Outbound({"telegram": paced}), registry(), clock=clock.clock())
        try:
            await apply_records(company, [record()], now=NOW)
            await drain(dispatcher)  # the notice
            # The next message to that chat within a minute: Telegram says wait 7 s.
            moved = record(at="2026-11-21T15:00:00+03:00", last_change_date="2026-11-16T13:00:00Z")
            await apply_records(company, [moved], now=NOW)
            clock.advance(5)
            await drain(dispatcher)
            assert api.refused == 1 and paced.holds == 1
            bucket = paced.buckets["telegram"]
            assert bucket.next_slot >= clock.now() + timedelta(seconds=7)
            notice = await ScheduledMessage.get(kind=kinds.NOTICE_MOVED)
            assert notice.status is ScheduledStatus.PENDING and notice.due_at > clock.now()
            # The next send waits the 7 s out on the clock first.
            taking = asyncio.ensure_future(bucket.take())
            assert await clock.next_sleep() == 7.0
            clock.advance(7)
            await taking
        finally:
            with contextlib.suppress(Exception):
                await bot.session.close()


async def test_a_dispatcher_back_late_alerts_after_the_reminder_it_sends(loop: Any) -> None:
    """Down from Monday until Friday 11:00 Moscow: the reminders and the silent-client alert
    are all due in one round; the alert waits for the reminder, then goes once."""
    company, channel, clock, dispatcher = loop
    await apply_records(company, [record()], now=NOW)
    await at(clock, datetime(2026, 11, 20, 8, 0, tzinfo=UTC), dispatcher)
    assert channel.texts(ADMIN_CHAT) == []
    assert f"reminder {kinds.HOURS_BEFORE}" in channel.texts()
    await at(clock, datetime(2026, 11, 20, 8, 1, tzinfo=UTC), dispatcher)
    await at(clock, datetime(2026, 11, 20, 8, 2, tzinfo=UTC), dispatcher)
    assert len(channel.texts(ADMIN_CHAT)) == 1
