"""A salon's settings: the loyalty rules and the visit loop's times, validated in one place.

Each key is a column on `Company` with its default there. Every way of changing one (`salonbot
company set`, an admin in chat, the owner's page) goes through `change()`, which validates all
the values first, saves them together and writes one `SettingChange` row per changed key. The
running service reads the company again within a minute (bot.companies.CompanyCache), so a
change needs no restart.

The keys and their texts are a contract (scripts set them):

| key | default | text |
| --- | --- | --- |
| accrual_percent | 5 | 0–100: bonus points per 100 ₽ of a completed visit |
| welcome_bonus | 0 | 0–100000: points for joining |
| max_redeem_percent | 30 | 0–100: the most of a bill bonuses may pay |
| reminder_day_before_at | 18:00 | HH:MM local, or off |
| reminder_hours_before | 2 | 0–72 hours before the visit; 0 is off |
| quiet_hours | 21:00-09:00 | HH:MM-HH:MM local, or off |
| silent_alert_hours_before | 3 | 0–72; 0 is off |
| review_delay_hours | 2 | 1–72 hours after the visit, or off |
| review_url | (empty) | an http(s) URL, or off/empty |
| digest_at | mon 10:00 | weekday HH:MM local (mon…sun), or off |
| telegram_bot_token | off | the salon's own bot's token from @BotFather, or off (core.salon_bot) |

A key may need the outside world before it is stored: the bot token is checked with Telegram
(`getMe`) and stores the bot's id, username and webhook key with it (`_Key.prepare`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from core import salon_bot
from core.models import Company, SettingChange
from core.settings import PUBLIC_TELEGRAM_API

OFF = "off"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


class SettingError(ValueError):
    """A value that cannot be stored; the message is one sentence naming the key and the fix."""


def _time(text: str) -> time | None:
    match = _HHMM.fullmatch(text)
    return time(int(match[1]), int(match[2])) if match else None


def _hhmm(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


@dataclass(frozen=True, slots=True)
class _Key:
    allowed: str  # the allowed values, as the error message says them
    parse: Callable[[str], Any]  # text -> stored value, or None when the text is not allowed
    show: Callable[[Any], str]
    # Texts whose case matters (a token, a link) are not lowered before parsing.
    keep_case: bool = False
    # Asks the outside world about the parsed value (company, value, context) and returns
    # more columns to store with it; raises salon_bot.TokenRefused with one sentence.
    prepare: Callable[..., Awaitable[dict[str, Any]]] | None = None


def _int_in(low: int, high: int, *, off_is: int | None = None) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if text == OFF and off_is is not None:
            return off_is
        return int(text) if text.isdigit() and low <= int(text) <= high else None

    return parse


def _day_time(text: str) -> Any:
    if text == OFF:
        return OFF
    moment = _time(text)
    return _hhmm(moment) if moment else None


def _quiet(text: str) -> Any:
    if text == OFF:
        return OFF
    start, sep, end = text.partition("-")
    a, b = _time(start.strip()), _time(end.strip())
    if not sep or a is None or b is None or a == b:
        return None
    return f"{_hhmm(a)}-{_hhmm(b)}"


def _review_delay(text: str) -> Any:
    if text in (OFF, "0"):
        return _OFF_MARK
    return int(text) if text.isdigit() and 1 <= int(text) <= 72 else None


def _url(text: str) -> Any:
    if text in ("", OFF):
        return ""
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.netloc and len(text) <= 512 and " " not in text:
        return text
    return None


def _digest(text: str) -> Any:
    if text == OFF:
        return OFF
    day, _sep, at = text.partition(" ")
    moment = _time(at.strip())
    if day[:3] not in WEEKDAYS or moment is None:
        return None
    return f"{day[:3]} {_hhmm(moment)}"


# None is "not allowed" for parsers, so a key stored as NULL (off) parses to this marker.
_OFF_MARK = object()


def _token(text: str) -> Any:
    if text in ("", OFF):
        return _OFF_MARK
    return salon_bot.parse_token(text)


def _show_plain(value: Any) -> str:
    return "" if value is None else str(value)


KEYS: dict[str, _Key] = {
    "accrual_percent": _Key("a whole number from 0 to 100", _int_in(0, 100), _show_plain),
    "welcome_bonus": _Key("a whole number from 0 to 100000", _int_in(0, 100_000), _show_plain),
    "max_redeem_percent": _Key("a whole number from 0 to 100", _int_in(0, 100), _show_plain),
    "reminder_day_before_at": _Key("a local time like 18:00, or off", _day_time, _show_plain),
    "reminder_hours_before": _Key(
        "a whole number of hours from 0 (off) to 72", _int_in(0, 72, off_is=0), _show_plain
    ),
    "quiet_hours": _Key("a local time range like 21:00-09:00, or off", _quiet, _show_plain),
    "silent_alert_hours_before": _Key(
        "a whole number of hours from 0 (off) to 72", _int_in(0, 72, off_is=0), _show_plain
    ),
    "review_delay_hours": _Key(
        "a whole number of hours from 1 to 72, or off",
        _review_delay,
        lambda v: OFF if v is None else str(v),
    ),
    "review_url": _Key("an http(s) link, or off", _url, lambda v: v or OFF, keep_case=True),
    "digest_at": _Key("a weekday and local time like mon 10:00, or off", _digest, _show_plain),
    salon_bot.KEY: _Key(
        "the bot's token from @BotFather (like 123456789:AAH…), or off",
        _token,
        salon_bot.fingerprint,
        keep_case=True,
        prepare=salon_bot.prepare,
    ),
}


def parse(key: str, text: str) -> Any:
    """The value to store for `key` given as `text`; SettingError names the key and the fix."""
    spec = KEYS.get(key)
    if spec is None:
        raise SettingError(f"unknown setting {key!r}: use one of {', '.join(KEYS)}")
    value = spec.parse(text.strip() if spec.keep_case else text.strip().lower())
    if value is None:
        # Not the text itself when it may be a secret (a mistyped token).
        shown = "this value" if spec.prepare else repr(text)
        raise SettingError(f"{key}: {shown} is not allowed; use {spec.allowed}")
    return None if value is _OFF_MARK else value


def show(company: Company) -> list[tuple[str, str]]:
    """Each key and its current value as `change()` would accept it."""
    return [(key, spec.show(getattr(company, key))) for key, spec in KEYS.items()]


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    old: str
    new: str


async def change(
    company: Company,
    values: Mapping[str, str],
    *,
    actor: str,
    now: datetime | None = None,
    telegram_api_url: str = PUBLIC_TELEGRAM_API,
    shared_bot_id: int | None = None,
) -> list[Change]:
    """Validate every value, then store them together with one audit row per changed key.
    Nothing is stored when any value is wrong. Returns what changed (unchanged keys are left
    out). The visit loop's pending rows are re-planned for the new times (as of `now`);
    `telegram_api_url` and `shared_bot_id` are what checking a bot token needs."""
    parsed = {key: parse(key, text) for key, text in values.items()}
    changes: list[Change] = []
    for key, value in parsed.items():
        show_value = KEYS[key].show
        old, new = show_value(getattr(company, key)), show_value(value)
        if old != new:
            changes.append(Change(key, old, new))
    if not changes:
        return []
    extra: dict[str, Any] = {}
    for c in changes:
        prepare = KEYS[c.key].prepare
        if prepare is None:
            continue
        try:
            extra |= await prepare(
                company, parsed[c.key], api_url=telegram_api_url, shared_bot_id=shared_bot_id
            )
        except salon_bot.TokenRefused as exc:
            raise SettingError(str(exc)) from None
    async with in_transaction():
        for key, value in (parsed | extra).items():
            setattr(company, key, value)
        await company.save(update_fields=[c.key for c in changes] + list(extra))
        await SettingChange.bulk_create(
            [
                SettingChange(
                    company_id=company.id, actor=actor, key=c.key, old_value=c.old, new_value=c.new
                )
                for c in changes
            ]
        )
    if any(c.key in _LOOP_KEYS for c in changes):
        # Pending reminders and the digest follow the new times at once. (Imported here:
        # the visit loop reads these settings, so it imports this module.)
        from core.visits import replan_company

        await replan_company(company, now or datetime.now(UTC))
    return changes


# The keys the visit loop's planned rows depend on.
_LOOP_KEYS = frozenset(
    {
        "reminder_day_before_at",
        "reminder_hours_before",
        "quiet_hours",
        "silent_alert_hours_before",
        "review_delay_hours",
        "digest_at",
    }
)


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """The visit loop's settings of one salon, typed: None means off."""

    tz: ZoneInfo
    day_before_at: time | None
    hours_before: int | None
    quiet: tuple[time, time] | None
    silent_alert_hours_before: int | None
    review_delay_hours: int | None
    review_url: str | None
    # (weekday 0 = Monday, local time)
    digest_at: tuple[int, time] | None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return ZoneInfo("Europe/Moscow")


def loop(company: Company) -> LoopSettings:
    quiet = None
    if company.quiet_hours != OFF:
        start, _sep, end = company.quiet_hours.partition("-")
        a, b = _time(start), _time(end)
        quiet = (a, b) if a and b else None
    digest = None
    if company.digest_at != OFF:
        day, _sep, at = company.digest_at.partition(" ")
        moment = _time(at)
        digest = (WEEKDAYS.index(day), moment) if day in WEEKDAYS and moment else None
    return LoopSettings(
        tz=_zone(company.timezone),
        day_before_at=_time(company.reminder_day_before_at),
        hours_before=company.reminder_hours_before or None,
        quiet=quiet,
        silent_alert_hours_before=company.silent_alert_hours_before or None,
        review_delay_hours=company.review_delay_hours or None,
        review_url=company.review_url or None,
        digest_at=digest,
    )
