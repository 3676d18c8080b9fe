"""Telling a client that their balance changed — composed here, delivered by a channel.

Callers hand the ledger results of committed work to `notify_committed`, the one way every
caller (the inbox worker, the sync cron, the sync API, `salonbot sync`) tells clients.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.i18n import _, gettext, ngettext
from core.ledger import LedgerResult
from core.models import LedgerKind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BalanceNotice:
    company_id: int
    client_id: int
    kind: LedgerKind
    amount: int
    balance: int

    @classmethod
    def from_result(cls, result: LedgerResult) -> BalanceNotice:
        return cls(result.company_id, result.client_id, result.kind, result.amount, result.balance)


_HEADLINES = {
    LedgerKind.ACCRUAL: _("Thank you for your visit! Bonus points earned: {amount}."),
    LedgerKind.WELCOME: _("Welcome! Bonus points for joining: {amount}."),
    LedgerKind.REDEMPTION: _("Bonus points spent: {amount}."),
    LedgerKind.REVERSAL: _("Bonus points for a cancelled visit were taken back: {amount}."),
    LedgerKind.MANUAL: _("The salon corrected your bonus balance by {amount}."),
    LedgerKind.EXPIRY: _("Bonus points expired: {amount}."),
}


def render(notice: BalanceNotice, locale: str) -> str:
    amount = notice.amount if notice.kind is LedgerKind.MANUAL else abs(notice.amount)
    signed = f"{amount:+d}" if notice.kind is LedgerKind.MANUAL else str(amount)
    headline = gettext(locale, _HEADLINES[notice.kind]).format(amount=signed)
    balance = ngettext(
        locale, "Your balance: {n} point.", "Your balance: {n} points.", notice.balance
    ).format(n=notice.balance)
    return f"{headline}\n{balance}"


class Notifier(Protocol):
    async def notify(self, notices: Sequence[BalanceNotice]) -> None: ...


class LoggingNotifier:
    """Used while no chat channel is on: the notice is logged, never lost silently."""

    async def notify(self, notices: Sequence[BalanceNotice]) -> None:
        for notice in notices:
            log.info(
                "balance notice (no channel on): client %s %s %+d -> %d",
                notice.client_id,
                notice.kind,
                notice.amount,
                notice.balance,
            )


async def notify_committed(notifier: Notifier, changes: Iterable[LedgerResult]) -> None:
    """Tell clients about `changes`, whose transactions have committed."""
    await deliver(notifier, [BalanceNotice.from_result(change) for change in changes])


async def deliver(notifier: Notifier, notices: Sequence[BalanceNotice]) -> None:
    """Send notices of committed changes. A notice that cannot go out is logged: it never
    turns work that is done into a failure, nor is it retried."""
    if not notices:
        return
    try:
        await notifier.notify(notices)
    except Exception:
        log.exception("balance notices for %d change(s) not delivered", len(notices))
