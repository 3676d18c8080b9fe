"""Issue 14: `/stats` for a salon's admins and the weekly digest — figures from the database,
checked against seeded rows, and one chart PNG that reads on a phone. Both databases."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram.methods import SendPhoto
from PIL import Image

from bot import digest
from bot.dialog.replies import Reply
from bot.digest import compose_digest
from bot.outbound import Delivery, Outbound, Recipient
from bot.visits import Dispatcher, Kinds
from core import ledger, stats
from core.clients import create_client
from core.models import (
    Booking,
    BookingStatus,
    Client,
    Company,
    LedgerEntry,
    ScheduledMessage,
    ScheduledStatus,
    StaffRole,
    VisitReview,
)
from tests.bot.conftest import Harness, make_salon, make_staff, said
from tests.fakes.clock import FakeClock
from tests.fakes.telegram import Person

OLGA = Person(8001, "Ольга")
IRA = Person(8002, "Ирина")
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_records = iter(range(1, 10_000))
_phones = iter(range(1000, 9999))


async def client(salon: Company, channel: str | None, days_ago: float, name: str) -> Client:
    made = await create_client(salon, phone=f"+7999123{next(_phones)}", name=name, welcome=False)
    await Client.filter(id=made.client.id).update(
        last_channel=channel, created_at=NOW - timedelta(days=days_ago)
    )
    return await Client.get(id=made.client.id)


async def visit(
    salon: Company, days_ago: float, status: BookingStatus = BookingStatus.COMPLETED, **more: Any
) -> Booking:
    return await Booking.create(
        company=salon,
        yclients_record_id=next(_records),
        visit_at=NOW - timedelta(days=days_ago),
        status=status,
        cost=1000,
        **more,
    )


async def entry(kind: str, client_id: int, amount: int, days_ago: float) -> None:
    key = f"seed:{kind}:{client_id}:{amount}:{days_ago}"
    if kind == "accrual":
        await ledger.accrue(client_id, amount, key)
    elif kind == "welcome":
        await ledger.welcome(client_id, amount, key)
    elif kind == "redeem":
        await ledger.redeem(client_id, amount, key)
    else:
        await ledger.adjust(client_id, amount, key, staff_id=None, reason="seed")
    await LedgerEntry.filter(idempotency_key=key).update(created_at=NOW - timedelta(days=days_ago))


async def reminder(salon: Company, n: int, answer: str | None, days_ago: float = 2) -> None:
    await ScheduledMessage.create(
        company=salon,
        kind="day_before" if n % 2 else "hours_before",
        key=f"reminder:{n}",
        due_at=NOW - timedelta(days=days_ago),
        sent_at=NOW - timedelta(days=days_ago),
        status=ScheduledStatus.SENT,
        answer=answer,
    )


async def seeded() -> Company:
    """A week the figures are known for, and rows just outside it."""
    salon = await make_salon()
    anna = await client(salon, "telegram", 1, "Анна Смирнова")
    await client(salon, "telegram", 6.9, "Мария")
    await client(salon, "whatsapp", 3, "Ольга")
    await client(salon, None, 2, "Нина")  # a card from a YClients record, no chat yet
    old = await client(salon, "telegram", 10, "Вера")
    # Visits: four completed this week, two the week before, one cancelled, one deleted.
    for days in (0.5, 1, 2, 6):
        await visit(salon, days)
    for days in (8, 13):
        await visit(salon, days)
    await visit(salon, 1, BookingStatus.CANCELLED)
    await visit(salon, 1, deleted=True)
    # Bonuses: awarded 300 + 50 − 30 this week, 100 before; 120 redeemed this week.
    await entry("accrual", anna.id, 200, 1)
    await entry("accrual", old.id, 100, 2)
    await entry("welcome", anna.id, 50, 1)
    await entry("accrual", old.id, 100, 9)
    await entry("redeem", anna.id, 120, 0.5)
    await entry("adjust", old.id, -30, 0.5)  # a correction is neither awarded nor redeemed
    # Reminders: five sent this week (three confirmed, one cancelled in time), one last month,
    # one not sent yet, and an after-visit question that is no reminder.
    for n, answer in enumerate(("confirmed", "confirmed", "confirmed", "cancelled", None)):
        await reminder(salon, n, answer)
    await reminder(salon, 10, "confirmed", days_ago=30)
    await ScheduledMessage.create(
        company=salon, kind="day_before", key="later", due_at=NOW + timedelta(days=1)
    )
    await ScheduledMessage.create(
        company=salon,
        kind="review",
        key="review:1",
        due_at=NOW - timedelta(days=1),
        sent_at=NOW - timedelta(days=1),
        status=ScheduledStatus.SENT,
        answer="cancelled",
    )
    # Ratings: 5, 4 and a 2 with a comment this week; a 1 last month.
    for rating, comment, days in ((5, "", 1), (4, "", 2), (2, "долго ждала", 3), (1, "", 40)):
        review = await VisitReview.create(
            company=salon, client=anna, rating=rating, comment=comment
        )
        await VisitReview.filter(id=review.id).update(created_at=NOW - timedelta(days=days))
    return salon


async def test_the_figures_match_the_seeded_week(orm: str) -> None:
    salon = await seeded()
    figures = await stats.figures(salon, NOW)
    assert figures.joined == {"telegram": 2, "whatsapp": 1, None: 1}
    assert figures.visits == 4
    assert (figures.awarded, figures.redeemed) == (350, 120)
    assert figures.outstanding == sum(await Client.filter().values_list("balance", flat=True))
    assert figures.outstanding == 200 + 50 - 120 + 100 + 100 - 30
    assert (figures.reminders_sent, figures.reminders_confirmed) == (5, 3)
    assert figures.cancellations_caught == 1
    assert figures.rating_count == 3 and round(figures.rating_average or 0, 2) == 3.67
    assert [(r.rating, r.comment, r.client_name) for r in figures.low_ratings] == [
        (2, "долго ждала", "Анна Смирнова")
    ]
    weeks = figures.weeks
    assert len(weeks) == 8 and weeks[-1].start == NOW - timedelta(days=7)
    assert [w.visits for w in weeks] == [0, 0, 0, 0, 0, 0, 2, 4]
    assert [w.awarded for w in weeks] == [0, 0, 0, 0, 0, 0, 100, 350]


async def test_an_admin_asks_for_the_figures_and_gets_them_with_a_chart(
    tg: Harness,
) -> None:
    salon = await seeded()
    tg.dialog.clock = NOW.timestamp
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    sent = await tg.say(OLGA, "📊 Статистика")
    text = said(sent)
    assert "📊 Салон Ромашка, 13.11.2026–20.11.2026" in text
    assert "Новых клиентов: 4 (Telegram 2, WhatsApp 1, ещё без чата 1)" in text
    assert "Визитов завершено: 4" in text
    assert "Бонусы: начислено 350, списано 120; на счетах клиентов 300" in text
    assert "Напоминания: отправлено 5, подтвердили 3, отменили заранее 1" in text
    assert "Оценки после визитов: 3,7 из 5 (3 оценки)" in text
    assert "★2 — Анна, 17.11.2026: «долго ждала»" in text
    photos = [m for m in sent if isinstance(m, SendPhoto)]
    assert len(photos) == 1
    png = photos[0].photo.data  # type: ignore[union-attr]
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (1080, 1350)
    # Not a blank canvas: both series are drawn in their colours.
    colours = {colour for _count, colour in image.getcolors(maxcolors=1 << 16) or []}
    assert stats.VISITS_COLOUR in colours and stats.BONUS_COLOUR in colours


async def test_staff_who_are_not_admins_get_no_figures(tg: Harness) -> None:
    salon = await make_salon()
    await make_staff(salon, IRA)
    sent = await tg.say(IRA, "/stats")
    assert "Это могут только администраторы салона." in said(sent)
    assert not [m for m in sent if isinstance(m, SendPhoto)]


async def test_the_digest_is_the_same_figures_in_each_admins_language(orm: str) -> None:
    salon = await seeded()
    compose = await compose_digest(salon, NOW)
    ru, en = compose("ru"), compose("en")
    assert ru[0].text.startswith("Неделя салона в цифрах:\n📊 Салон Ромашка")
    assert "Visits completed: 4" in en[0].text
    assert "Ratings after visits: 3.7 of 5 (3 ratings)" in en[0].text
    assert ru[1].image is not None and en[1].image is not None


async def test_the_visit_loop_sends_the_digest_to_the_admins_at_its_time(orm: str) -> None:
    salon = await seeded()
    await Company.filter(id=salon.id).update(digest_at="fri 12:00")  # 09:00 UTC in Moscow
    await make_staff(salon, OLGA, StaffRole.ADMIN)
    await make_staff(salon, IRA)  # staff who are not admins get no digest
    channel = Recording()
    kinds_ = Kinds()
    digest.register(kinds_)
    clock = FakeClock(NOW - timedelta(hours=1))
    dispatcher = Dispatcher(Outbound({"telegram": channel}), kinds_, clock=clock.clock())
    await dispatcher.plan_digests()
    assert await dispatcher.round() == 0  # not yet
    clock.moment = NOW
    assert await dispatcher.round() == 1
    ((address, replies),) = channel.sent
    assert address == str(OLGA.id)
    assert replies[0].text.startswith("Неделя салона в цифрах:\n📊 Салон Ромашка, 13.11.2026")
    assert "Визитов завершено: 4" in replies[0].text
    assert replies[1].image is not None and replies[1].image.png.startswith(b"\x89PNG")
    assert await dispatcher.round() == 0  # once


class Recording:
    name = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Reply]]] = []

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        self.sent.append((to.addresses[self.name], list(replies)))
        return Delivery.SENT
