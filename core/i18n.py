"""Gettext catalogs shared by both chat channels and the web page (`locales/<lang>/…`).

The bot uses aiogram's I18n over the same directory; core/ and web/ use these helpers, so
core/ stays free of aiogram.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.support import NullTranslations, Translations

DOMAIN = "messages"
LOCALES = ("ru", "en")
DEFAULT_LOCALE = "ru"
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


def pick_locale(*candidates: str | None) -> str:
    """The first supported locale among candidates (`en-US` counts as `en`), else ru."""
    for candidate in candidates:
        if candidate:
            lang = candidate.replace("_", "-").split("-", 1)[0].lower()
            if lang in LOCALES:
                return lang
    return DEFAULT_LOCALE


def locale_from_accept_language(header: str | None) -> str:
    if not header:
        return DEFAULT_LOCALE
    ranked: list[tuple[float, str]] = []
    for part in header.split(","):
        lang, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((quality, lang))
    ranked.sort(key=lambda item: -item[0])
    return pick_locale(*(lang for q, lang in ranked if q > 0))


@lru_cache(maxsize=8)
def translations(locale: str) -> NullTranslations:
    return Translations.load(str(LOCALES_DIR), [locale], DOMAIN)


def gettext(locale: str, message: str) -> str:
    return translations(pick_locale(locale)).gettext(message)


def ngettext(locale: str, singular: str, plural: str, n: int) -> str:
    return translations(pick_locale(locale)).ngettext(singular, plural, n)


def _(message: str) -> str:
    """Marks a message for extraction where it is defined; translate it where it is shown."""
    return message
