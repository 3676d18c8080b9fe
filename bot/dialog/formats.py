"""Numbers, money and times the way a Russian salon writes them (and an English one reads them)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.models import Company

NBSP = "\u00a0"


def money(amount: int) -> str:
    """`1 500 ₽`: thousands apart by a non-breaking space, so a price never breaks a line."""
    return f"{amount:,}".replace(",", NBSP) + f"{NBSP}₽"


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
