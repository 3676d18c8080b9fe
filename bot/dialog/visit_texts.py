"""What the visit loop says: the reminders and the after-visit question (each a `Compose`,
locale -> replies, built when the row goes out), and the lines the salon's admins read.

A reminder says when relative to the moment it is sent (today, tomorrow, or the date), in the
salon's time zone, with the weekday: "Завтра, 27.11 (пт), в 12:00".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.dialog import actions, formats
from bot.dialog.client import service_link, service_titles
from bot.dialog.replies import Button, Reply
from core.i18n import _, gettext
from core.models import Booking, Client, Company, ScheduledMessage
from core.visits import Due, kinds

if TYPE_CHECKING:
    # bot.outbound and bot.visits render these replies (they import bot.dialog): types only.
    from bot.outbound import Compose
    from bot.visits import Kinds

STARS = (1, 2, 3, 4, 5)
# VisitAnswer.answer: a reminder's three buttons, and the answers to "cancel your visit?".
COME = "come"
CANCEL = "cancel"
MOVE = "move"
CANCEL_SURE = "sure"
KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Visit:
    """A reminder's or a question's row with what it speaks of, loaded once."""

    row: ScheduledMessage
    booking: Booking
    company: Company
    client: Client

    @classmethod
    async def load(cls, row: ScheduledMessage) -> Visit | None:
        """None when the booking or the client is gone (nothing to say any more)."""
        if row.booking_id is None or row.client_id is None:
            return None
        booking = await Booking.get_or_none(id=row.booking_id)
        client = await Client.get_or_none(id=row.client_id)
        company = await Company.get_or_none(id=row.company_id)
        if booking is None or client is None or company is None or booking.visit_at is None:
            return None
        return cls(row, booking, company, client)

    @classmethod
    def of_due(cls, due: Due) -> Visit | None:
        """The claimed row's visit as the loop loaded it; None when something is gone."""
        booking, client = due.booking, due.client
        if booking is None or client is None or booking.visit_at is None:
            return None
        return cls(due.row, booking, due.company, client)

    @property
    def salon(self) -> str:
        return self.company.title or "—"

    def when(self, locale: str, *, sent_at: datetime | None = None) -> str:
        """ "Завтра, пятница, 20 ноября, 12:00": as the booking notices say it
        (bot.visits.texts.when), with today or tomorrow relative to `sent_at`."""
        text = _when(self.visit_at, self.company, locale)
        if sent_at is None:
            return text
        days = (
            formats.local(self.visit_at, self.company).date()
            - formats.local(sent_at, self.company).date()
        ).days
        if days == 0:
            return gettext(locale, "Today, {when}").format(when=text)
        if days == 1:
            return gettext(locale, "Tomorrow, {when}").format(when=text)
        return text

    @property
    def visit_at(self) -> datetime:
        if self.booking.visit_at is None:
            raise RuntimeError("a visit without a time")
        return self.booking.visit_at

    def what(self, locale: str) -> str:
        """ "Стрижка, мастер Мария"."""
        services = service_titles(self.booking) or gettext(locale, "visit")
        if not self.booking.staff_name:
            return services
        text = gettext(locale, "{services}, master {master}")
        return text.format(services=services, master=self.booking.staff_name)

    def who(self) -> str:
        """The client as the salon's admins know them: name and phone."""
        return f"{self.client.name or '—'} ({self.client.phone or '—'})"

    def for_admins(self, locale: str) -> dict[str, str]:
        return {
            "client": self.who(),
            "when": formats.day_time(self.visit_at, self.company),
            "what": self.what(locale),
        }

    def booking_link(self) -> str | None:
        """The salon's booking page with this visit's service and master chosen (see
        move_link)."""
        return move_link(self.company, self.booking)


# The date and the address are worded as the booking notices word them (bot.visits.texts),
# imported when first used: bot.visits sends through bot.outbound, which imports the dialog's
# replies, so importing it while the dialog loads would be circular.


def _when(moment: datetime, company: Company, locale: str) -> str:
    from bot.visits.texts import when

    return when(moment, company, locale)


def _address(company: Company) -> str:
    from bot.visits.texts import address

    return address(company)


def move_link(company: Company, booking: Booking) -> str | None:
    """The booking widget with the visit's first service and its master chosen.

    YClients' widget reads `o=s{service}` (a service) and `o=m{master}` (a master): seen in
    public code, not documented (shared/reference/yclients-api.md). Both together are written
    `o=m{master}s{service}` as public salon sites do; unconfirmed, so only for a widget at its
    usual address (service_link falls back to the plain booking link otherwise). The master's
    id comes from the synced catalogue, by the name the record carries.
    """
    service_id = next(
        (line.get("id") for line in booking.services or [] if isinstance(line, dict)), None
    )
    link = service_link(company, service_id)
    master = _master_id(company, booking.staff_name)
    if link and master is not None and "?o=s" in link:
        return link.replace("?o=s", f"?o=m{master}s", 1)
    return link


def _master_id(company: Company, name: str) -> int | None:
    if not name:
        return None
    for master in (company.catalogue or {}).get("staff") or []:
        if isinstance(master, dict) and master.get("name") == name:
            found = master.get("id")
            return found if isinstance(found, int) else None
    return None


def first_name(client: Client) -> str:
    return formats.first_name(client.name) if client.name.strip() else ""


def _message(visit: Visit, locale: str, lines: tuple[str, str], *rest: str) -> str:
    """The first line (`lines`: with the client's first name, and without one), then `rest`."""
    name = first_name(visit.client)
    head = gettext(locale, lines[0] if name else lines[1])
    return "\n".join([head.format(name=name, salon=visit.salon), *rest])


def reminder(visit: Visit) -> Compose:
    """A reminder of the visit with I'll come / Cancel / Move."""
    row = visit.row
    head = (
        _("{name}, a reminder of your booking — {salon}."),
        _("A reminder of your booking — {salon}."),
    )

    def compose(locale: str) -> list[Reply]:
        lines = [visit.when(locale, sent_at=row.due_at), visit.what(locale)]
        where = _address(visit.company)
        if where:
            lines.append(gettext(locale, "Address: {address}").format(address=where))
        ask = gettext(locale, "Will you come?")
        text = _message(visit, locale, head, *lines, "", ask)
        answer = actions.VisitAnswer
        buttons = (
            (Button(gettext(locale, "✅ I'll come"), action=answer(row.id, COME)),),
            (Button(gettext(locale, "🔁 Move"), action=answer(row.id, MOVE)),),
            (Button(gettext(locale, "❌ Cancel the visit"), action=answer(row.id, CANCEL)),),
        )
        return [Reply(text, buttons=buttons)]

    return compose


def after_visit(visit: Visit) -> Compose:
    """ "How was it?" with 1–5."""
    row = visit.row
    head = (
        _("{name}, thank you for your visit — {salon}!"),
        _("Thank you for your visit — {salon}!"),
    )

    def compose(locale: str) -> list[Reply]:
        ask = gettext(locale, "How was it? Please rate it from 1 to 5.")
        text = _message(visit, locale, head, visit.what(locale), "", ask)
        stars = tuple(Button(f"{n} ⭐", action=actions.Rating(row.id, n)) for n in STARS)
        return [Reply(text, buttons=(stars,))]

    return compose


async def reminder_for(due: Due) -> Compose | None:
    """The loop's handler for a claimed reminder row; None when its visit is gone."""
    visit = Visit.of_due(due)
    return reminder(visit) if visit is not None else None


async def after_visit_for(due: Due) -> Compose | None:
    """The loop's handler for a claimed after-visit question; None when its visit is gone."""
    visit = Visit.of_due(due)
    return after_visit(visit) if visit is not None else None


def to_admins(visit: Visit, message: str, **extra: str) -> Compose:
    """A line about the visit for the salon's admins, in their language: `message` may use
    {client} (name and phone), {when}, {what} and the `extra` values."""

    def compose(locale: str) -> list[Reply]:
        values = {**visit.for_admins(locale), **extra}
        return [Reply(gettext(locale, message).format(**values))]

    return compose


def register(registry: Kinds) -> None:
    """The kinds the dialog writes: the two reminders and the after-visit question."""
    registry.register(kinds.DAY_BEFORE, reminder_for)
    registry.register(kinds.HOURS_BEFORE, reminder_for)
    registry.register(kinds.REVIEW, after_visit_for)
