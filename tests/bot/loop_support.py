"""What the visit loop's dialog tests share: a salon in the YClients emulator and in the
database, a client with an upcoming visit, and the reminder or question sent about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.dialog.replies import Reply
from bot.dialog.visit_texts import Visit, after_visit, reminder
from bot.outbound import Delivery, Recipient
from core.models import (
    Booking,
    BookingStatus,
    Client,
    Company,
    ScheduledMessage,
    ScheduledStatus,
)
from core.visits import kinds
from core.yclients import YClientsClient
from tests.fakes.yclients import PARTNER_TOKEN, USER_TOKEN, YClientsEmulator

MASTER_ID = 77
SERVICE_ID = 11


@dataclass
class Inbox:
    """A chat channel (bot.outbound.ClientChannel) that keeps what it was asked to send: the
    salon's admins read their alerts here."""

    name: str = "telegram"
    sent: list[tuple[Recipient, list[Reply]]] = field(default_factory=list)

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        self.sent.append((to, list(replies)))
        return Delivery.SENT

    def to_staff(self) -> list[str]:
        return ["\n".join(r.text for r in replies) for to, replies in self.sent if to.staff_id]


def yclients_for(yc: YClientsEmulator) -> YClientsClient:
    """The process's YClients client against the emulator: the real limiter and retries, the
    backoff without waiting."""
    return YClientsClient(
        yc.url, PARTNER_TOKEN, USER_TOKEN, rate_limit=50, backoff_base=0.0, backoff_max=0.0
    )


async def prepare_salon(company: Company, yc: YClientsEmulator, **settings: Any) -> Company:
    """The salon in the emulator too, with its master in the synced catalogue."""
    yc.add_company(company.yclients_id, title=company.title)
    catalogue = dict(company.catalogue or {})
    catalogue["staff"] = [{"id": MASTER_ID, "name": "Мария", "specialization": "стилист"}]
    await Company.filter(id=company.id).update(catalogue=catalogue, **settings)
    return await Company.get(id=company.id)


async def upcoming_visit(
    company: Company,
    client: Client,
    yc: YClientsEmulator,
    *,
    ahead: timedelta = timedelta(hours=20),
    kind: str = kinds.DAY_BEFORE,
    completed: bool = False,
) -> ScheduledMessage:
    """A record in YClients, its booking here, and the row of `kind` about it, sent (as the
    loop's dispatcher leaves it) a moment ago."""
    now = datetime.now(UTC)
    visit_at = (now + ahead).replace(microsecond=0)
    tz = ZoneInfo(company.timezone)
    record = yc.add_record(
        company.yclients_id,
        datetime=visit_at.astimezone(tz),
        staff_id=MASTER_ID,
        staff={"id": MASTER_ID, "name": "Мария"},
        attendance=1 if completed else 0,
        client={"id": 5, "name": client.name, "phone": (client.phone or "").lstrip("+")},
    )
    booking = await Booking.create(
        company_id=company.id,
        yclients_record_id=record["id"],
        client_id=client.id,
        visit_at=visit_at,
        services=[{"id": SERVICE_ID, "title": "Стрижка", "cost": 1500, "amount": 1}],
        staff_name="Мария",
        cost=1500,
        status=BookingStatus.COMPLETED if completed else BookingStatus.PENDING,
        attendance=1 if completed else 0,
    )
    return await ScheduledMessage.create(
        company_id=company.id,
        booking_id=booking.id,
        client_id=client.id,
        kind=kind,
        key=kinds.per_visit_key(kind, booking.id, visit_at)
        if kind in kinds.PER_VISIT
        else kinds.review_key(booking.id),
        due_at=now - timedelta(minutes=1),
        status=ScheduledStatus.SENT,
        sent_at=now - timedelta(minutes=1),
        channel="telegram",
    )


async def the_message(row: ScheduledMessage, locale: str = "ru") -> Reply:
    """The reminder or question the row sent, as the client's channel got it."""
    visit = await Visit.load(row)
    assert visit is not None
    compose = after_visit(visit) if row.kind == kinds.REVIEW else reminder(visit)
    (reply,) = compose(locale)
    return reply


def button(reply: Reply, text: str) -> str:
    """The packed action of the button whose label contains `text`."""
    for row in reply.buttons:
        for b in row:
            if text in b.text and b.action is not None:
                return b.action.pack()
    raise AssertionError(f"no button {text!r} in {[b.text for r in reply.buttons for b in r]}")


async def record_of(yc: YClientsEmulator, company: Company, row: ScheduledMessage) -> Any:
    booking = await Booking.get(id=row.booking_id)
    return yc.records[company.yclients_id][booking.yclients_record_id]
