"""Numbers, money and times the way a Russian salon writes them (and an English one reads them)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pytrovich.detector import PetrovichGenderDetector
from pytrovich.enums import Case, Gender, NamePart
from pytrovich.maker import PetrovichDeclinationMaker

from core.models import Company

NBSP = "\u00a0"


def money(amount: int) -> str:
    """`1 500 ₽`: thousands apart by a non-breaking space, so a price never breaks a line."""
    return f"{amount:,}".replace(",", NBSP) + f"{NBSP}₽"


def percent(value: int) -> str:
    """`30 %`, the number and the sign kept on one line."""
    return f"{value}{NBSP}%"


def signed(amount: int) -> str:
    return f"+{amount}" if amount > 0 else f"−{-amount}" if amount < 0 else "0"


def salon_tz(company: Company | None) -> tzinfo:
    try:
        return ZoneInfo(company.timezone) if company is not None else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local(moment: datetime, company: Company | None) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(salon_tz(company))


def day(moment: datetime, company: Company | None) -> str:
    return local(moment, company).strftime("%d.%m.%Y")


def day_time(moment: datetime, company: Company | None) -> str:
    return local(moment, company).strftime("%d.%m.%Y %H:%M")


def clock(moment: datetime, company: Company | None) -> str:
    return local(moment, company).strftime("%H:%M")


def first_name(name: str) -> str:
    return name.split()[0] if name.strip() else "—"


def genitive(name: str, locale: str) -> str:
    """A first name as Russian says it after «у» (`Екатерина` → `Екатерины`), by the petrovich
    rules; other languages, and names the rules do not know (Latin letters), stay as they are."""
    if locale != "ru" or not name or not any("а" <= ch.lower() <= "я" for ch in name):
        return name
    return _genitive_ru(name)


@lru_cache(maxsize=1024)
def _genitive_ru(name: str) -> str:
    detector, maker = _petrovich()
    gender = detector.detect(firstname=name)  # type: ignore[no-untyped-call]
    if gender is Gender.ANDROGYNOUS:
        # Саша, Женя, Валя: declined alike either way, but only as a gendered name.
        gender = Gender.FEMALE
    return str(maker.make(NamePart.FIRSTNAME, gender, Case.GENITIVE, name))


@lru_cache(maxsize=1)
def _petrovich() -> tuple[PetrovichGenderDetector, PetrovichDeclinationMaker]:
    # The rules are read from the package's files on first use, not at import.
    return PetrovichGenderDetector(), PetrovichDeclinationMaker()
