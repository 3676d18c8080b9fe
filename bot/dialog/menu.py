"""The menu: what a person can ask for, its labels in every language, and reading them back.

A Telegram reply keyboard sends its label as plain text, and a WhatsApp or console user types
it, so a label in any language (with or without its emoji, in any case) means its intent.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from core.i18n import LOCALES, _, gettext


class Intent(StrEnum):
    BOOK = "book"
    BALANCE = "balance"
    VISITS = "visits"
    MY_CODE = "code"
    LANGUAGE = "language"
    HELP = "help"
    REDEEM = "redeem"
    LOOKUP = "lookup"
    ADJUST = "adjust"
    CANCEL = "cancel"
    REMINDERS = "reminders"
    SETTINGS = "settings"
    TEAM = "team"
    STATS = "stats"


LABELS = {
    Intent.BOOK: _("📅 Book"),
    Intent.BALANCE: _("🎁 Bonuses"),
    Intent.VISITS: _("🗓 Visits"),
    Intent.MY_CODE: _("🔑 My code"),
    Intent.LANGUAGE: _("🌐 Language"),
    Intent.HELP: _("❓ Help"),
    Intent.REDEEM: _("💳 Redeem bonuses"),
    Intent.LOOKUP: _("🔎 Find a client"),
    Intent.ADJUST: _("✏️ Adjust a balance"),
    Intent.CANCEL: _("✖️ Cancel"),
    Intent.REMINDERS: _("🔔 Reminders"),
    Intent.SETTINGS: _("⚙️ Settings"),
    Intent.TEAM: _("👥 Staff"),
    Intent.STATS: _("📊 Figures"),
}

# Commands every channel understands (Telegram shows them in its command menu).
COMMANDS = {
    "book": Intent.BOOK,
    "balance": Intent.BALANCE,
    "bonuses": Intent.BALANCE,
    "visits": Intent.VISITS,
    "code": Intent.MY_CODE,
    "language": Intent.LANGUAGE,
    "help": Intent.HELP,
    "menu": Intent.HELP,
    "redeem": Intent.REDEEM,
    "lookup": Intent.LOOKUP,
    "adjust": Intent.ADJUST,
    "cancel": Intent.CANCEL,
    "reminders": Intent.REMINDERS,
    "settings": Intent.SETTINGS,
    "staff": Intent.TEAM,
    "team": Intent.TEAM,
    "stats": Intent.STATS,
}
# Staff's own (admins' included): anyone else is answered as for unknown text.
STAFF_INTENTS = frozenset(
    {Intent.REDEEM, Intent.LOOKUP, Intent.ADJUST, Intent.SETTINGS, Intent.TEAM, Intent.STATS}
)


def label(intent: Intent, locale: str) -> str:
    return gettext(locale, LABELS[intent])


def _key(text: str) -> str:
    # Drop the emoji and punctuation around a label: "🎁 Bonuses", "bonuses" and "BONUSES!"
    # are one thing.
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text).split()).casefold()


@lru_cache(maxsize=1)
def _by_label() -> dict[str, Intent]:
    found: dict[str, Intent] = {}
    for intent, message in LABELS.items():
        for locale in LOCALES:
            found[_key(gettext(locale, message))] = intent
    return found


def intent_for(text: str) -> Intent | None:
    """The intent a menu label (in any language) stands for, else None."""
    key = _key(text)
    return _by_label().get(key) if key else None


def main_menu(
    locale: str, *, staff: bool = False, admin: bool = False
) -> tuple[tuple[str, ...], ...]:
    """The client's menu; staff see their own rows above it (they are often clients too)."""
    rows: list[tuple[str, ...]] = []
    if staff:
        rows.append((label(Intent.REDEEM, locale), label(Intent.LOOKUP, locale)))
        if admin:
            rows.append((label(Intent.ADJUST, locale), label(Intent.SETTINGS, locale)))
            rows.append((label(Intent.TEAM, locale), label(Intent.STATS, locale)))
    rows += [
        (label(Intent.BOOK, locale), label(Intent.BALANCE, locale)),
        (label(Intent.VISITS, locale), label(Intent.MY_CODE, locale)),
        (label(Intent.REMINDERS, locale), label(Intent.LANGUAGE, locale)),
        (label(Intent.HELP, locale),),
    ]
    return tuple(rows)
