"""Telling a client that their balance changed — composed here, delivered by a channel.

Callers collect notices from ledger results and hand them to a Notifier only after the
transaction that wrote the entries has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
