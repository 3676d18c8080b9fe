"""Phone numbers to E.164 (`+79991234567`), whatever shape YClients or a person sends."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "RU"


def normalize_phone(raw: str | int | None, region: str = DEFAULT_REGION) -> str | None:
    """E.164 for a valid number, else None. `79653605355`, `8 (999) 123-45-67` and
    `+7 999 123-45-67` are the same person; digits without a plus that are not a valid
    number of `region` are tried as international (`380501234567`)."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    candidates = [text]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith("+") and len(digits) >= 10:
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def mask_phone(e164: str | None) -> str:
    """`+79991234567` -> `+7 *** ***-45-67`: enough for staff to recognise, not to copy."""
    if not e164:
        return "—"
    return f"{e164[:-10]} *** ***-{e164[-4:-2]}-{e164[-2:]}" if len(e164) >= 11 else "***"


def mask_chat_id(chat_id: str | None) -> str:
    """`79001234567@c.us` -> `***4567@c.us`: a WhatsApp chat id names a phone (or a person,
    for `@lid`), so logs keep only enough to tell two chats apart."""
    if not chat_id:
        return "—"
    user, at, server = chat_id.partition("@")
    user = user.partition(":")[0]  # a device suffix (`…:12@c.us`) names no one
    return f"***{user[-4:] if len(user) > 6 else ''}{at}{server}"
