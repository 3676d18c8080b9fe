"""The client's side of the visit loop, for every channel: answering a reminder (I'll come,
Cancel, Move), rating a visit, and the client's say on what the salon sends unasked.

Buttons carry the row of the reminder or question they answer (bot.dialog.actions); a row is
acted on only for the client it was sent to. YClients is called through core.bookings.answers,
which makes a second press call nothing. What the salon's admins should know goes through
bot.outbound after the answer is stored.

Typed words stand for the buttons (a WhatsApp chat has no buttons that stay): «да», «ок»,
«буду», «приду» confirm the latest open reminder, «отмена» cancels it (after asking once
more), «перенести» moves it; «стоп»/«stop» asks what to stop, «старт»/«start» turns messages
back on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError

from bot.dialog import actions
from bot.dialog.base import Flows
from bot.dialog.menu import Intent
from bot.dialog.replies import Button, Reply, rows
from bot.dialog.session import Session
from bot.dialog.visit_texts import CANCEL, CANCEL_SURE, COME, KEEP, MOVE, Visit, to_admins
from core.client_say import set_say
from core.i18n import _
from core.models import (
    BookingStatus,
    ScheduledMessage,
    ScheduledStatus,
    VisitReview,
)
from core.visits import answers, kinds
from core.visits.answers import Outcome

if TYPE_CHECKING:
    from bot.outbound import Compose

log = logging.getLogger(__name__)

REVIEW_KINDS = (kinds.REVIEW,)

GOOD = 4  # a rating from here up is thanked with the review link
CANCEL_STATE = "visit:cancel"
REVIEW_STATE = "review:comment"
COMMENT_LIMIT = 2000

CONFIRM_WORDS = frozenset({"да", "ок", "ok", "окей", "буду", "приду", "да буду", "да приду"})
CANCEL_WORDS = frozenset({"отмена", "отменить", "отменить запись", "cancel"})
MOVE_WORDS = frozenset({"перенести", "перенос", "перенести запись", "move", "reschedule"})
YES_WORDS = frozenset({"да", "д", "yes", "y", "ок", "ok", "да отменить", "отменить"})
NO_WORDS = frozenset({"нет", "н", "no", "n", "оставить", "нет оставить"})
STOP_WORDS = frozenset({"стоп", "stop"})
START_WORDS = frozenset({"старт", "start"})


# Say's choice -> (reminders_off, messages_off, the answer).
_SAYS = {
    actions.Say.REMINDERS_OFF: (
        True,
        False,
        _(
            "Done: no more reminders or questions after a visit. Messages about your "
            "bookings will still come. Write «старт» (start) to turn reminders back on."
        ),
    ),
    actions.Say.ALL_OFF: (
        True,
        True,
        _(
            "Done: the salon will not write to you on its own any more. You can still use "
            "the bot as before. Write «старт» (start) to get messages again."
        ),
    ),
    actions.Say.ON: (False, False, _("Reminders and messages from the salon are on again.")),
}


def words(text: str) -> str:
    """Lower case, letters and digits only, `ё` as `е`: «Да!» and «да» are one word."""
    found = " ".join("".join(ch if ch.isalnum() else " " for ch in text).split())
    return found.casefold().replace("ё", "е")


class VisitFlows(Flows):
    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def _tell_admins(self, company_id: int, compose: Compose) -> None:
        if self.outbound is None:
            log.warning("no outbound channels: the salon's admins are not told")
            return
        try:
            reached = await self.outbound.to_admins(company_id, compose)
        except Exception:
            log.exception("telling the admins of salon %s failed", company_id)
            return
        if not reached:
            log.warning("no admin of salon %s could be reached", company_id)

    async def _loop_visit(self, s: Session, row_id: int, of: tuple[str, ...]) -> Visit | None:
        """The row's visit, when the row is this client's and of one of the kinds `of`."""
        if s.client is None or s.company is None:
            return None
        row = await ScheduledMessage.get_or_none(
            id=row_id, client_id=s.client.id, company_id=s.company.id, kind__in=of
        )
        return await Visit.load(row) if row is not None else None

    async def _open_reminder(self, s: Session) -> ScheduledMessage | None:
        """The latest reminder sent to this client whose visit is still ahead."""
        if s.client is None:
            return None
        return (
            await ScheduledMessage.filter(
                client_id=s.client.id,
                kind__in=kinds.REMINDERS,
                status=ScheduledStatus.SENT,
                booking__visit_at__gt=self._now(),
                booking__deleted=False,
            )
            .exclude(booking__status=BookingStatus.CANCELLED)
            .order_by("-sent_at", "-id")
            .first()
        )

    async def loop_action(self, s: Session, action: actions.Action) -> list[Reply]:
        """A pressed button of the visit loop."""
        match action:
            case actions.VisitAnswer(message_id=row, answer=choice):
                return await self.reminder_answer(s, row, choice)
            case actions.Rating(row=row, stars=stars):
                return await self.rate(s, row, stars)
            case actions.Say(choice=choice):
                return await self.the_say(s, choice)
        return [Reply(s._("This button is no longer active."))]

    # --- a reminder's answer ---

    async def reminder_answer(self, s: Session, row_id: int, choice: str) -> list[Reply]:
        visit = await self._loop_visit(s, row_id, answers.ANSWERABLE_KINDS)
        if visit is None:
            return [Reply(s._("This button is no longer active."))]
        if visit.visit_at <= self._now():
            return [Reply(s._("This visit has already taken place."))]
        handlers = {
            COME: self._come,
            CANCEL: self._ask_cancel,
            CANCEL_SURE: self._cancel,
            KEEP: self._keep,
            MOVE: self._move,
        }
        handler = handlers.get(choice)
        if handler is None:
            return [Reply(s._("This button is no longer active."))]
        if choice != CANCEL:
            s.go(None)
        return await handler(s, visit)

    async def _come(self, s: Session, visit: Visit) -> list[Reply]:
        result = await answers.confirm(visit.row, self.yclients, now=self._now())
        if result.outcome is Outcome.FAILED:
            return await self._failed(s, visit, confirming=True)
        texts = {
            Outcome.DONE: s._("Thank you! We have noted that you will come. See you!"),
            Outcome.ALREADY: s._("You have already confirmed this visit. See you!"),
            Outcome.CANCELLED: s._("This visit is cancelled."),
            Outcome.BUSY: s._("One moment: we are already taking care of your answer."),
        }
        return [Reply(texts[result.outcome])]

    async def _ask_cancel(self, s: Session, visit: Visit) -> list[Reply]:
        booking = visit.booking
        if visit.row.answer == answers.CANCELLED or booking.deleted or booking.attendance == -1:
            return [Reply(s._("This visit is cancelled."))]
        s.go(CANCEL_STATE, visit_row=visit.row.id)
        text = s._("Cancel your visit?\n{when}\n{what}").format(
            when=visit.when(s.locale), what=visit.what(s.locale)
        )
        buttons = rows(
            Button(s._("Yes, cancel it"), action=actions.VisitAnswer(visit.row.id, CANCEL_SURE)),
            Button(s._("No, keep it"), action=actions.VisitAnswer(visit.row.id, KEEP)),
        )
        return [Reply(text, buttons=buttons)]

    async def _keep(self, s: Session, visit: Visit) -> list[Reply]:
        return [Reply(s._("Good, your visit stays as it is. See you!"))]

    async def _cancel(self, s: Session, visit: Visit) -> list[Reply]:
        result = await answers.cancel(visit.row, self.yclients, now=self._now())
        if result.outcome is Outcome.FAILED:
            return await self._failed(s, visit, confirming=False)
        if result.outcome is Outcome.BUSY:
            return [Reply(s._("One moment: we are already taking care of your answer."))]
        if result.outcome is not Outcome.DONE:
            return [Reply(s._("This visit is cancelled."))]
        message = _("❌ {client} cancelled the visit in the bot: {when}, {what}.")
        if result.how == "attendance":
            message = _(
                "❌ {client} cancelled the visit in the bot: {when}, {what}. The salon's "
                "YClients token may not delete records, so the record is marked as the "
                "client not coming (attendance −1)."
            )
        await self._tell_admins(visit.company.id, to_admins(visit, message))
        text = s._(
            "Your visit is cancelled. We will be glad to see you another time: you can book "
            "again whenever you like."
        )
        book = rows(Button(s._("📅 Book a visit"), action=actions.Book()))
        return [Reply(text, buttons=book)]

    async def _move(self, s: Session, visit: Visit) -> list[Reply]:
        if visit.booking.deleted or visit.row.answer == answers.CANCELLED:
            return [Reply(s._("This visit is cancelled."))]
        if await answers.move(visit.row, now=self._now()):
            message = _("🔁 {client} wants to move the visit {when}, {what}. Please call them.")
            await self._tell_admins(visit.company.id, to_admins(visit, message))
        link = visit.booking_link()
        if not link:
            text = s._(
                "Please call the salon to choose another time: the administrator already "
                "knows you want to move your visit."
            )
            return [Reply(text)]
        text = s._(
            "Choose another time on the booking page: your service and master are already "
            "chosen. The administrator knows you want to move and may call you; your current "
            "booking stays until it is changed."
        )
        return [Reply(text, buttons=rows(Button(s._("📅 Choose another time"), url=link)))]

    async def _failed(self, s: Session, visit: Visit, *, confirming: bool) -> list[Reply]:
        if confirming:
            message = _(
                "⚠️ {client} confirmed the visit {when}, {what} in the bot, but YClients did "
                "not take it. Please mark the visit as confirmed by hand."
            )
        else:
            message = _(
                "⚠️ {client} asked in the bot to cancel the visit {when}, {what}, but YClients "
                "did not take it. Please cancel it by hand and tell the client."
            )
        await self._tell_admins(visit.company.id, to_admins(visit, message))
        text = s._(
            "Sorry, the salon's booking system did not answer just now. The administrator has "
            "been told and will take care of it; you can also press the button again a little "
            "later."
        )
        return [Reply(text)]

    # --- after the visit ---

    async def rate(self, s: Session, row_id: int, stars: int) -> list[Reply]:
        visit = await self._loop_visit(s, row_id, REVIEW_KINDS)
        if visit is None or not 1 <= stars <= 5:
            return [Reply(s._("This button is no longer active."))]
        s.go(None)
        try:
            review = await VisitReview.create(
                company_id=visit.company.id,
                booking_id=visit.booking.id,
                client_id=visit.client.id,
                rating=stars,
            )
        except IntegrityError:
            return [Reply(s._("Thank you, we already have your rating of this visit."))]
        await ScheduledMessage.filter(id=visit.row.id).update(
            answer=str(stars), answered_at=self._now()
        )
        if stars >= GOOD:
            text = s._("Thank you! We are so glad you liked it.")
            url = visit.company.review_url
            if not url:
                return [Reply(text)]
            text += "\n" + s._("If you have a minute, a review would help us a lot:")
            return [Reply(text, buttons=rows(Button(s._("✍️ Leave a review"), url=url)))]
        s.go(REVIEW_STATE, review_id=review.id)
        text = s._(
            "We are sorry. What went wrong? Write a few words: only the salon's administrator "
            "will read them."
        )
        return [Reply(text)]

    async def review_comment(self, s: Session, text: str) -> list[Reply]:
        review_id = s.data.get("review_id")
        s.go(None)
        review = await VisitReview.get_or_none(id=review_id) if review_id else None
        if review is None or s.client is None or review.client_id != s.client.id:
            return await self.unknown(s)
        if review.comment:
            return [Reply(s._("Thank you, we have passed your words on already."))]
        comment = text.strip()[:COMMENT_LIMIT]
        await VisitReview.filter(id=review.id, comment="").update(comment=comment)
        row = await ScheduledMessage.filter(
            booking_id=review.booking_id, kind__in=REVIEW_KINDS
        ).first()
        visit = await Visit.load(row) if row is not None else None
        if visit is not None:
            message = _("⭐ {rating}/5 from {client} about the visit {when}, {what}:\n«{text}»")
            await self._tell_admins(
                visit.company.id,
                to_admins(visit, message, rating=str(review.rating), text=comment),
            )
        return [Reply(s._("Thank you for telling us. The administrator will look into it."))]

    # --- the client's say ---

    async def the_say(self, s: Session, choice: str | None = None) -> list[Reply]:
        if s.company is None:
            return self.no_salon(s)
        client = s.client
        if client is None:
            return self.salon_closed(s) or self.ask_phone(s, then=Intent.REMINDERS)
        chosen = _SAYS.get(choice or "")
        if chosen is None:
            return self._say_choices(s)
        reminders_off, messages_off, text = chosen
        await set_say(client, reminders_off=reminders_off, messages_off=messages_off)
        return [Reply(s._(text))]

    def _say_choices(self, s: Session) -> list[Reply]:
        client = s.client
        if client is None:
            raise RuntimeError("the say without a client")
        say = actions.Say
        only = Button(s._("🔕 Only reminders"), action=say(say.REMINDERS_OFF))
        everything = Button(s._("🔕 Everything"), action=say(say.ALL_OFF))
        on = Button(s._("🔔 Turn everything back on"), action=say(say.ON))
        if client.messages_off:
            text = s._("Messages from the salon are off now.")
            return [Reply(text, buttons=rows(on))]
        if client.reminders_off:
            text = s._(
                "Reminders and questions after a visit are off now; messages about your "
                "bookings still come."
            )
            return [Reply(text, buttons=rows(on, everything))]
        text = s._(
            "What should we stop sending?\n«Only reminders»: no reminders and no question "
            "after a visit; messages about your bookings still come.\n«Everything»: the salon "
            "will not write to you on its own."
        )
        return [Reply(text, buttons=rows(only, everything))]

    # --- typed words ---

    async def loop_word(self, s: Session, text: str) -> list[Reply] | None:
        """A typed word that answers the loop (see the module's docstring); None when the
        text is none of them, or a flow other than the cancel question is under way."""
        word = words(text)
        if s.state == CANCEL_STATE:
            row_id = s.data.get("visit_row")
            if word in YES_WORDS and isinstance(row_id, int):
                return await self.reminder_answer(s, row_id, CANCEL_SURE)
            if word in NO_WORDS and isinstance(row_id, int):
                return await self.reminder_answer(s, row_id, KEEP)
            s.go(None)
        elif s.state:
            return None
        if s.client is None:
            return None
        if word in STOP_WORDS:
            return await self.the_say(s)
        if word in START_WORDS:
            if not (s.client.reminders_off or s.client.messages_off):
                return None
            return await self.the_say(s, actions.Say.ON)
        choice = (
            COME
            if word in CONFIRM_WORDS
            else CANCEL
            if word in CANCEL_WORDS
            else MOVE
            if word in MOVE_WORDS
            else None
        )
        if choice is None:
            return None
        row = await self._open_reminder(s)
        if row is None:
            return None
        return await self.reminder_answer(s, row.id, choice)
