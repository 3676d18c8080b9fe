"""The salon's bonus rules in plain words, from its own settings, for clients (on joining and on
the balance screen): "5 % of every visit comes back as bonuses; 1 bonus = 1 ₽; bonuses pay up
to 30 % of a bill", and the welcome bonus when the salon gives one."""

from __future__ import annotations

from bot.dialog.formats import percent
from core.i18n import gettext, ngettext
from core.models import Company


def rules_text(company: Company, locale: str) -> str:
    lines = []
    if company.accrual_percent > 0:
        lines.append(
            gettext(locale, "{percent} of every visit comes back to you as bonuses.").format(
                percent=percent(company.accrual_percent)
            )
        )
    lines.append(gettext(locale, "1 bonus = 1 ₽."))
    if company.max_redeem_percent >= 100:
        lines.append(gettext(locale, "Bonuses can pay a whole bill."))
    elif company.max_redeem_percent > 0:
        lines.append(
            gettext(locale, "Bonuses pay up to {percent} of a bill.").format(
                percent=percent(company.max_redeem_percent)
            )
        )
    if company.welcome_bonus > 0:
        lines.append(
            ngettext(
                locale,
                "For joining, the salon gives {n} bonus.",
                "For joining, the salon gives {n} bonuses.",
                company.welcome_bonus,
            ).format(n=company.welcome_bonus)
        )
    return " ".join(lines)
