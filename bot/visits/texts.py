"""The booking notices to clients and the silent-client alert to admins, in each reader's
language: what, with whom, when (the salon's local day, weekday and time), where."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.dialog import actions
from bot.dialog.client import service_titles
from bot.dialog.formats import local
from bot.dialog.replies import Button, Reply
from bot.outbound import Compose
from bot.visits.registry import Audience, Kinds
from core.i18n import _, gettext
from core.models import Booking, Company
from core.visits import Due, kinds

_WEEKDAYS = (
    _("Monday"),
    _("Tuesday"),
    _("Wednesday"),
    _("Thursday"),
    _("Friday"),
    _("Saturday"),
    _("Sunday"),
)
# "{day} <month>" as a date reads in each language (Russian takes the genitive: 20 ноября).
_MONTHS = (
    _("{day} January"),
    _("{day} February"),
    _("{day} March"),
    _("{day} April"),
    _("{day} May"),
    _("{day} June"),
    _("{day} July"),
    _("{day} August"),
    _("{day} September"),
    _("{day} October"),
    _("{day} November"),
    _("{day} December"),
)


def when(moment: datetime, company: Company, locale: str) -> str:
    """`пятница, 20 ноября, 12:00` in the salon's time zone."""
    at = local(moment, company)
    weekday = gettext(locale, _WEEKDAYS[at.weekday()])
    date = gettext(locale, _MONTHS[at.month - 1]).format(day=at.day)
    return f"{weekday}, {date}, {at:%H:%M}"


def address(company: Company) -> str:
    """The salon's address as YClients gives it (stored with the catalogue by the sync)."""
    value = (company.catalogue or {}).get("address")
    return value.strip() if isinstance(value, str) else ""


def _visit_lines(booking: Booking, company: Company, locale: str) -> list[str]:
    if booking.visit_at is None:
        raise RuntimeError("a notice about a booking without a time")
    lines = [
        gettext(locale, _("When: {when}")).format(when=when(booking.visit_at, company, locale))
    ]
    services = service_titles(booking)
    if services:
        lines.append(gettext(locale, _("Services: {services}")).format(services=services))
    if booking.staff_name:
        lines.append(gettext(locale, _("Specialist: {name}")).format(name=booking.staff_name))
    where = address(company)
    if where:
        lines.append(gettext(locale, _("Address: {address}")).format(address=where))
    return lines


def _salon(company: Company, locale: str) -> str:
    return company.title or gettext(locale, _("the salon"))


async def created(due: Due) -> Compose | None:
    booking, company, row_id = due.booking, due.company, due.row.id
    if booking is None:
        return None

    def compose(locale: str) -> Sequence[Reply]:
        head = gettext(locale, _("You are booked at {salon}.")).format(
            salon=_salon(company, locale)
        )
        buttons = (
            (
                Button(
                    gettext(locale, _("Cancel the booking")),
                    action=actions.VisitAnswer(row_id, "cancel"),
                ),
                Button(gettext(locale, _("Move it")), action=actions.VisitAnswer(row_id, "move")),
            ),
        )
        text = "\n".join([head, *_visit_lines(booking, company, locale)])
        return [Reply(text, buttons=buttons)]

    return compose


async def moved(due: Due) -> Compose | None:
    booking, company = due.booking, due.company
    if booking is None:
        return None
    was = due.row.payload.get("from_at")

    def compose(locale: str) -> Sequence[Reply]:
        head = gettext(locale, _("Your booking at {salon} has changed.")).format(
            salon=_salon(company, locale)
        )
        lines = [head, *_visit_lines(booking, company, locale)]
        if isinstance(was, str):
            before = when(datetime.fromisoformat(was), company, locale)
            lines.append(gettext(locale, _("It was: {when}")).format(when=before))
        return [Reply("\n".join(lines))]

    return compose


async def cancelled(due: Due) -> Compose | None:
    booking, company = due.booking, due.company
    if booking is None:
        return None

    def compose(locale: str) -> Sequence[Reply]:
        head = gettext(locale, _("Your booking at {salon} has been cancelled.")).format(
            salon=_salon(company, locale)
        )
        lines = [head, *_visit_lines(booking, company, locale)]
        lines.append(gettext(locale, _("We will be glad to see you another time.")))
        buttons: tuple[tuple[Button, ...], ...] = ()
        if company.bookform_url:
            book = Button(gettext(locale, _("Book again")), url=company.bookform_url)
            buttons = ((book,),)
        return [Reply("\n".join(lines), buttons=buttons)]

    return compose


async def silent_client(due: Due) -> Compose | None:
    booking, client, company = due.booking, due.client, due.company
    if booking is None or booking.visit_at is None:
        return None
    name = (client.name if client else "") or "—"
    phone = (client.phone if client else None) or "—"
    visit_at = booking.visit_at

    def compose(locale: str) -> Sequence[Reply]:
        text = gettext(
            locale,
            _(
                "The client has not answered the reminder: {name}, {phone}.\n"
                "{services}, {when}{staff}.\nPlease call them to confirm the visit."
            ),
        ).format(
            name=name,
            phone=phone,
            services=service_titles(booking) or gettext(locale, _("visit")),
            when=when(visit_at, company, locale),
            staff=f" · {booking.staff_name}" if booking.staff_name else "",
        )
        return [Reply(text)]

    return compose


def register(registry: Kinds) -> None:
    """The kinds this module writes: the booking notices and the silent-client alert."""
    registry.register(kinds.NOTICE_CREATED, created)
    registry.register(kinds.NOTICE_MOVED, moved)
    registry.register(kinds.NOTICE_CANCELLED, cancelled)
    registry.register(kinds.SILENT_ALERT, silent_client, audience=Audience.ADMINS)
