"""WhatsApp chat ids and the phone numbers behind them."""

from __future__ import annotations


def strip_device_suffix(jid: str) -> str:
    """`79001234567:15@c.us` -> `79001234567@c.us` (the linked-device number is not the user)."""
    user, at, server = jid.partition("@")
    return user.partition(":")[0] + at + server


def chat_id_for_phone(phone: str) -> str:
    """`+79001234567` -> `79001234567@c.us`; the phone must already be E.164 (core.phones)."""
    digits = phone.strip().removeprefix("+")
    if not (digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15):
        raise ValueError(f"not an E.164 phone number: {phone!r}")
    return f"{digits}@c.us"


def phone_from_chat_id(chat_id: str | None) -> str | None:
    """`79001234567@c.us` (device suffix allowed) -> `+79001234567`; None for a hidden `@lid`,
    a group, a broadcast or anything else that is not a person's phone."""
    if not chat_id:
        return None
    user, _, server = strip_device_suffix(chat_id.strip()).partition("@")
    if server not in ("c.us", "s.whatsapp.net"):
        return None
    if not (user.isascii() and user.isdigit() and 7 <= len(user) <= 15):
        return None
    return "+" + user
