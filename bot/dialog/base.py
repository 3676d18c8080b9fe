"""What the client and staff flows share: the menu, the phone gate, notices, the staff check."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bot.companies import CompanyCache, unavailable_reply
from bot.dialog.menu import Intent, main_menu
from bot.dialog.replies import Reply
from bot.dialog.session import Session
from bot.outbound import Outbound
from core import staff as staff_service
from core.models import Staff, StaffRole
from core.notifications import BalanceNotice, Notifier, deliver
from core.yclients import YClientsClient

if TYPE_CHECKING:
    from bot.dialog.questions import Media

log = logging.getLogger(__name__)


class Flows:
    def __init__(
        self,
        notifier: Notifier,
        companies: CompanyCache | None = None,
        *,
        clock: Callable[[], float] = time.time,
        outbound: Outbound | None = None,
        yclients: YClientsClient | None = None,
    ) -> None:
        self.notifier = notifier
        # Messages nobody just asked for: questions to the admins, their answers to clients.
        self.outbound = outbound or Outbound()
        self.companies = companies or CompanyCache()
        # Seconds since the epoch; tests move it instead of waiting.
        self.clock = clock
        # Confirms and cancels records for a reminder's answer; None: YClients is off.
        self.yclients = yclients

    async def notify(self, notices: Sequence[BalanceNotice]) -> None:
        """Tell clients about balance changes; the ledger has committed by now. A failure to
        deliver is logged and never undoes or blocks what the staff member did."""
        await deliver(self.notifier, notices)

    async def staff(self, s: Session) -> Staff | None:
        """The active staff row of this person in the bound salon, read from the database on
        every staff action: a removal or a role change counts at once."""
        if s.company is None or not s.staff_identity:
            return None
        return await staff_service.active_staff(s.company.id, **s.staff_identity)

    async def menu(self, s: Session) -> tuple[tuple[str, ...], ...]:
        staff = await self.staff(s)
        return main_menu(
            s.locale, staff=staff is not None, admin=staff is not None and is_admin(staff)
        )

    def no_salon(self, s: Session) -> list[Reply]:
        return [
            Reply(
                s._(
                    "I don't know your salon yet. Open the bot through the link your salon "
                    "gave you: on its website, in a message from it, or on the QR poster at "
                    "the reception."
                )
            )
        ]

    def salon_closed(self, s: Session) -> list[Reply] | None:
        """The explanation for a salon that left or is paused; None while the bot serves it."""
        if s.company is None:
            return None
        text = unavailable_reply(s.company.integration_status, s.locale)
        return [Reply(text)] if text else None

    def ask_phone(self, s: Session, then: Intent | None = None) -> list[Reply]:
        if then is not None:
            # Once the phone is in, the person gets what they asked for.
            s.remember(after_phone=then.value)
        return [
            Reply(
                s._(
                    "To see your bonuses and book, share your phone number with the button "
                    "below. The salon finds your visits by it."
                ),
                ask_contact=s._("📱 Share my phone number"),
            )
        ]

    async def question(
        self, s: Session, text: str = "", media: Media | None = None
    ) -> list[Reply] | None:
        """Overridden by bot.dialog.questions (a person behind the bot)."""
        return None

    async def coded_answer(self, s: Session, text: str) -> list[Reply] | None:
        """Overridden by bot.dialog.questions (an admin's «ответ CODE text»)."""
        return None

    async def unknown(self, s: Session, text: str = "", media: Media | None = None) -> list[Reply]:
        """What nothing else understood: an admin's «ответ CODE text», a client's question or
        file for the salon's admins, or else a pointer to the menu."""
        if s.company is None:
            return self.no_salon(s)
        passed = await self.coded_answer(s, text) if text else None
        if passed is None:
            passed = await self.question(s, text, media)
        if passed is not None:
            return passed
        return [
            Reply(
                s._("Sorry, I didn't get that. Please use the menu below."),
                menu=await self.menu(s),
            )
        ]


def is_admin(staff: Staff) -> bool:
    return staff.role is StaffRole.ADMIN
