"""The links a salon hands out to its clients."""

from __future__ import annotations


def telegram_link(bot_username: str | None, yclients_id: int) -> str | None:
    if not bot_username:
        return None
    return f"https://t.me/{bot_username.lstrip('@')}?start=salon-{yclients_id}"


def max_link(bot_username: str | None, yclients_id: int) -> str | None:
    """MAX's deep link: the salon arrives as `bot_started.payload` (bot.max)."""
    if not bot_username:
        return None
    return f"https://max.ru/{bot_username.lstrip('@')}?start=salon-{yclients_id}"


def whatsapp_link(phone: str | None) -> str | None:
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return f"https://wa.me/{digits}" if digits else None
