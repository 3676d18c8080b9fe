"""A client's side of the conversation: joining, booking, bonuses, visits, the code, language."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tortoise.functions import Sum

from bot.dialog import actions, formats
from bot.dialog.base import Flows
from bot.dialog.menu import Intent
from bot.dialog.replies import Button, Image, Reply, rows
from bot.dialog.session import Session
from bot.qr import qr_png
from core import clients, codes, ledger
from core.i18n import LOCALES, _, ngettext
from core.models import Booking, BookingStatus, Client, Company, LedgerEntry, LedgerKind
from core.notifications import BalanceNotice, render
from core.phones import normalize_phone

HISTORY_PAGE = 5
VISITS_SHOWN = 5
TOP_SERVICES = 5
# A YClients booking widget at its usual address; services link into it (see service_link).
_BOOKFORM = re.compile(r"^https://n(\d+)\.yclients\.com/?$")

_KINDS = {
    LedgerKind.ACCRUAL: _("for a visit"),
    LedgerKind.REDEMPTION: _("spent"),
    LedgerKind.REVERSAL: _("visit cancelled"),
    LedgerKind.MANUAL: _("correction"),
    LedgerKind.WELCOME: _("welcome bonus"),
    LedgerKind.EXPIRY: _("expired"),
}
LANGUAGE_NAMES = {"ru": "Русский", "en": "English"}


def service_link(company: Company, service_id: object) -> str | None:
    """A link that opens the salon's booking widget with the service chosen.

    YClients documents no such parameter, but its widgets answer
    `https://n{form}.yclients.com/company/{company}/personal/menu?o=s{service}` (seen in
    public salon sites). When the salon's booking link has another shape (a custom domain, an
    old widget), guessing could lead nowhere, so the plain booking link is used instead.
    """
    form = _BOOKFORM.match(company.bookform_url or "")
    if form and isinstance(service_id, int):
        return (
            f"https://n{form.group(1)}.yclients.com/company/{company.yclients_id}"
            f"/personal/menu?o=s{service_id}"
        )
    return company.bookform_url


def _price(s: Session, service: dict[str, Any]) -> str:
    low, high = service.get("price_min"), service.get("price_max")
    try:
        low_value, high_value = int(low or 0), int(high or low or 0)
    except (TypeError, ValueError):
        return ""
    if low_value <= 0:
        return ""
    if high_value > low_value:
        return s._("from {price}").format(price=formats.money(low_value))
    return formats.money(low_value)


def top_services(company: Company) -> list[dict[str, Any]]:
    """The first services of the synced catalogue that have a price, in the salon's own order
    (salons arrange YClients' list with what is asked for most at the top)."""
    catalogue = company.catalogue or {}
    services = [
        s
        for s in catalogue.get("services") or []
        if isinstance(s, dict) and s.get("title") and s.get("id") is not None
    ]
    return services[:TOP_SERVICES]


def service_titles(booking: Booking) -> str:
    """The visit's services as its record lists them (`Стрижка, Укладка`)."""
    return ", ".join(
        str(line.get("title"))
        for line in booking.services or []
        if isinstance(line, dict) and line.get("title")
    )


def balance_line(s: Session, balance: int) -> str:
    return ngettext(
        s.locale, "Your balance: {n} point.", "Your balance: {n} points.", balance
    ).format(n=balance)


class ClientFlows(Flows):
    async def need_client(self, s: Session, intent: Intent) -> list[Reply] | None:
        """The replies that stand in the way (no salon, a closed one, no phone yet), or None
        when the client may go on."""
        if s.company is None:
            return self.no_salon(s)
        closed = self.salon_closed(s)
        if closed is not None:
            return closed
        if s.client is None:
            return self.ask_phone(s, then=intent)
        return None

    async def welcome(self, s: Session, *, returning: bool | None = None) -> list[Reply]:
        """After /start in a bound salon: the menu, or the phone first. "Welcome back" only to
        a client who has written before (`returning`; by default core.clients.has_written)."""
        if s.company is None:
            raise RuntimeError("welcome needs a bound salon")
        closed = self.salon_closed(s)
        if closed is not None:
            return closed
        title = s.company.title or s._("the salon")
        if s.client is None and await self.staff(s) is not None:
            # Staff need no phone for their own work; the menu has their commands.
            text = s._("Welcome back to {salon}!").format(salon=title)
            return [Reply(text, menu=await self.menu(s))]
        if s.client is None:
            greeting = s._("Welcome to {salon}! Here you book visits and collect bonuses.")
            return [Reply(greeting.format(salon=title)), *self.ask_phone(s)]
        if returning is None:
            returning = clients.has_written(s.client)
        if returning:
            text = s._("Welcome back to {salon}!").format(salon=title)
        else:
            text = s._("Welcome to {salon}! Here you book visits and collect bonuses.")
            text = text.format(salon=title)
        return [Reply(f"{text}\n{balance_line(s, s.client.balance)}", menu=await self.menu(s))]

    async def joined(self, s: Session, phone_text: str) -> list[Reply]:
        """A phone the channel vouches for (a Telegram contact of the sender's own, the
        console's `--phone`): join the salon's client with it, or create one."""
        if s.company is None:
            return self.no_salon(s)
        closed = self.salon_closed(s)
        if closed is not None:
            return closed
        phone = normalize_phone(phone_text)
        if phone is None:
            return [
                Reply(s._("I couldn't read that phone number. Please try the button again.")),
                *self.ask_phone(s),
            ]
        link = {
            k: v
            for k, v in s.identity.items()
            if k in ("telegram_user_id", "whatsapp_chat_id", "max_user_id")
        }
        try:
            if link:
                joined = await clients.join_by_phone(
                    s.company, phone, name=s.name, locale=s.locale, **link
                )
            else:
                joined = await clients.client_by_phone(s.company, phone, name=s.name)
        except clients.PhoneTaken:
            return [
                Reply(
                    s._(
                        "This number belongs to another client card of the salon. Please ask "
                        "the salon to merge the cards."
                    )
                )
            ]
        client, welcome = joined.client, joined.welcome
        if s.channel.remembered:
            await clients.remember_channel(client, s.channel.name)
        s.client = client
        replies: list[Reply] = []
        if welcome is not None:
            replies.append(Reply(render(BalanceNotice.from_result(welcome), s.locale)))
        then = s.data.pop("after_phone", None)
        s.changed = True
        menu = await self.menu(s)
        done = s._("Thank you, your phone number is saved.")
        replies.append(Reply(done, menu=menu))
        if then in {i.value for i in (Intent.BOOK, Intent.BALANCE, Intent.VISITS, Intent.MY_CODE)}:
            replies += await self.client_intent(s, Intent(then))
        elif welcome is None:
            replies.append(Reply(balance_line(s, client.balance)))
        return replies

    async def client_intent(self, s: Session, intent: Intent) -> list[Reply]:
        handlers = {
            Intent.BOOK: self.book,
            Intent.BALANCE: self.balance,
            Intent.VISITS: self.visits,
            Intent.MY_CODE: self.my_code,
        }
        return await handlers[intent](s)

    async def book(self, s: Session) -> list[Reply]:
        blocked = await self.need_client(s, Intent.BOOK)
        if blocked is not None:
            return blocked
        company = s.company
        if company is None:
            raise RuntimeError("need_client passed without a salon")
        title = company.title or s._("the salon")
        if not company.bookform_url:
            text = s._("Online booking is not open at {salon} yet. Please call the salon.")
            return [Reply(text.format(salon=title))]
        buttons = [Button(s._("📅 Open online booking"), url=company.bookform_url)]
        for service in top_services(company):
            link = service_link(company, service.get("id"))
            price = _price(s, service)
            name = str(service["title"])[:48]
            buttons.append(Button(f"{name} — {price}" if price else name, url=link))
        text = s._("Book a visit at {salon}: choose a service or open the whole booking page.")
        return [Reply(text.format(salon=title), buttons=rows(*buttons))]

    async def balance(self, s: Session) -> list[Reply]:
        blocked = await self.need_client(s, Intent.BALANCE)
        if blocked is not None:
            return blocked
        client = s.client
        if client is None:
            raise RuntimeError("need_client passed without a client")
        entries = list(await ledger.history(client.id, limit=HISTORY_PAGE + 1))
        lines = [balance_line(s, client.balance)]
        if entries:
            lines += ["", s._("Latest changes:")]
            lines += [self._entry(s, e) for e in entries[:HISTORY_PAGE]]
        else:
            lines.append(s._("No bonus history yet: bonuses come with every visit."))
        return [Reply("\n".join(lines), buttons=self._more(s, entries))]

    async def history(self, s: Session, before_id: int) -> list[Reply]:
        blocked = await self.need_client(s, Intent.BALANCE)
        if blocked is not None:
            return blocked
        if s.client is None:
            raise RuntimeError("need_client passed without a client")
        entries = list(
            await ledger.history(s.client.id, limit=HISTORY_PAGE + 1, before_id=before_id)
        )
        if not entries:
            return [Reply(s._("That's all: there are no earlier changes."))]
        lines = [s._("Earlier changes:"), *(self._entry(s, e) for e in entries[:HISTORY_PAGE])]
        return [Reply("\n".join(lines), buttons=self._more(s, entries))]

    def _more(self, s: Session, entries: list[LedgerEntry]) -> tuple[tuple[Button, ...], ...]:
        if len(entries) <= HISTORY_PAGE:
            return ()
        return rows(
            Button(s._("Earlier changes"), action=actions.History(entries[HISTORY_PAGE - 1].id))
        )

    def _entry(self, s: Session, entry: LedgerEntry) -> str:
        what = s._(_KINDS[entry.kind])
        moment = entry.created_at
        booking = entry.booking if entry.booking_id is not None else None
        if isinstance(booking, Booking):
            # The visit's own day and services: the entry's created_at is when the sync (or a
            # webhook) learned of the visit, which can be days later.
            if booking.visit_at is not None:
                moment = booking.visit_at
            services = service_titles(booking)
            if services:
                what = f"{what}: {services}"
        elif entry.kind is LedgerKind.MANUAL and entry.reason:
            what = f"{what}: {entry.reason}"
        return f"{formats.day(moment, s.company)}  {formats.signed(entry.amount)}  {what}"

    async def visits(self, s: Session) -> list[Reply]:
        blocked = await self.need_client(s, Intent.VISITS)
        if blocked is not None:
            return blocked
        if s.client is None:
            raise RuntimeError("need_client passed without a client")
        now = datetime.now(UTC)
        mine = Booking.filter(client_id=s.client.id, visit_at__isnull=False)
        upcoming = (
            await mine.filter(
                visit_at__gte=now, status__in=[BookingStatus.PENDING, BookingStatus.CONFIRMED]
            )
            .order_by("visit_at")
            .limit(VISITS_SHOWN)
        )
        recent = await mine.filter(visit_at__lt=now).order_by("-visit_at").limit(VISITS_SHOWN)
        earned = await self._earned([b.id for b in recent])
        lines: list[str] = []
        if upcoming:
            lines.append(s._("Upcoming visits:"))
            lines += [self._visit(s, b) for b in upcoming]
        if recent:
            if lines:
                lines.append("")
            lines.append(s._("Recent visits:"))
            lines += [self._visit(s, b, earned.get(b.id, 0)) for b in recent]
        if not lines:
            text = s._("You have no visits yet.")
            book = rows(Button(s._("📅 Book a visit"), action=actions.Book()))
            return [Reply(text, buttons=book)]
        return [Reply("\n".join(lines))]

    async def _earned(self, booking_ids: list[int]) -> dict[int, int]:
        if not booking_ids:
            return {}
        rows_ = (
            await LedgerEntry.filter(
                booking_id__in=booking_ids,
                kind__in=[LedgerKind.ACCRUAL, LedgerKind.REVERSAL],
            )
            .annotate(total=Sum("amount"))
            .group_by("booking_id")
            .values_list("booking_id", "total")
        )
        return {int(b): int(t or 0) for b, t in rows_}

    def _visit(self, s: Session, booking: Booking, earned: int | None = None) -> str:
        if booking.visit_at is None:
            raise RuntimeError("a visit without a time")
        services = service_titles(booking)
        parts = [formats.day_time(booking.visit_at, s.company), services or s._("visit")]
        if booking.staff_name:
            parts.append(booking.staff_name)
        text = " · ".join(parts)
        if earned is None:
            return text
        status = {
            BookingStatus.COMPLETED: s._("visited"),
            BookingStatus.NO_SHOW: s._("missed"),
            BookingStatus.CANCELLED: s._("cancelled"),
        }.get(booking.status, s._("awaiting"))
        bonus = s._("bonus {amount}").format(amount=formats.signed(earned)) if earned else ""
        return f"{text} — {status}" + (f", {bonus}" if bonus else "")

    async def my_code(self, s: Session) -> list[Reply]:
        blocked = await self.need_client(s, Intent.MY_CODE)
        if blocked is not None:
            return blocked
        if s.client is None:
            raise RuntimeError("need_client passed without a client")
        shown = codes.display(s.client.code)
        text = s._(
            "Your personal code: {code}\nShow it (or this QR code) at the reception to pay "
            "with bonuses."
        ).format(code=shown)
        return [Reply(text, image=Image(qr_png(shown), f"code-{s.client.code}.png"))]

    async def language(self, s: Session) -> list[Reply]:
        buttons = tuple(
            Button(LANGUAGE_NAMES[loc], action=actions.Language(loc)) for loc in LOCALES
        )
        return [Reply(s._("Choose the language:"), buttons=(buttons,))]

    async def set_language(self, s: Session, locale: str) -> list[Reply]:
        if locale not in LOCALES:
            return await self.language(s)
        s.locale = locale
        # Kept in the chat's data too: it holds before the phone is shared.
        s.remember(locale=locale)
        if s.client is not None and s.client.locale != locale:
            s.client.locale = locale
            await Client.filter(id=s.client.id).update(locale=locale)
        text = s._("Language: {language}.").format(language=LANGUAGE_NAMES[locale])
        if s.company is None:
            return [Reply(text)]
        return [Reply(text, menu=await self.menu(s), edit=False)]

    async def help(self, s: Session) -> list[Reply]:
        if s.company is None:
            return self.no_salon(s)
        lines = [
            s._(
                "📅 Book: the salon's online booking.\n"
                "🎁 Bonuses: your balance and its history.\n"
                "🗓 Visits: upcoming and recent visits, bonus for each.\n"
                "🔑 My code: show it at the reception to pay with bonuses.\n"
                "🌐 Language: русский or English."
            )
        ]
        if await self.staff(s) is not None:
            lines.append(
                s._(
                    "For staff: /redeem CODE AMOUNT redeems bonuses (or send a client's code); "
                    "/lookup CODE or PHONE finds a client; /adjust CODE ±AMOUNT REASON corrects "
                    "a balance (admins); /cancel stops what you started."
                )
            )
        return [Reply("\n\n".join(lines), menu=await self.menu(s))]
