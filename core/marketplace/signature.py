"""The signed registration redirect: YClients' `user_data` and its signature, and the salon
ids a redirect names.

YClients signs only `user_data` (the user: id, name, phone, email), not `salon_id`: a good
signature proves which YClients user came, not which salon they own (core.marketplace.registration
decides that).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Branches one redirect may name; more is refused, never cut silently.
MAX_BRANCHES = 10


class SignatureError(Exception):
    """The redirect's `user_data` is unsigned or its signature is wrong; the text says which."""


class SignatureMissing(SignatureError):
    pass


class SignatureInvalid(SignatureError):
    pass


def decode_user_data(raw: str) -> bytes:
    """The JSON bytes of `user_data`: URL-safe base64, padding optional.

    Plain `b64decode` silently drops `-` and `_`, which changes the bytes and breaks the
    signature, so the alphabet is translated and the result validated strictly. A `+` of a
    standard-alphabet sender arrives as a space once the query string is decoded: put it back.
    """
    text = raw.strip().replace(" ", "+").rstrip("=")
    if len(text) % 4 == 1:
        raise SignatureInvalid("user_data is not base64 (wrong length)")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.translate(str.maketrans("-_", "+/")), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("user_data is not URL-safe base64") from None


def sign_user_data(raw_json: bytes, partner_token: str) -> str:
    """Hex HMAC-SHA256 of the decoded JSON keyed with the partner token, as YClients signs."""
    return hmac.new(partner_token.encode(), raw_json, hashlib.sha256).hexdigest()


def encode_user_data(raw_json: bytes) -> str:
    """URL-safe base64 without padding, the form YClients sends (for tests and tools)."""
    return base64.urlsafe_b64encode(raw_json).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class MarketplaceUser:
    """The YClients user who opened the app, from signed `user_data`."""

    id: int | None
    name: str | None
    email: str | None
    phone: str | None
    salon_name: str | None
    salon_ids: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MarketplaceUser:
        def text(name: str, limit: int) -> str | None:
            value = data.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            return (value.strip()[:limit] or None) if isinstance(value, str) else None

        raw_id = data.get("id", data.get("user_id"))
        user_id = as_int(raw_id)
        listed = data.get("salon_ids")
        named = [data.get("salon_id"), *(listed if isinstance(listed, list) else [])]
        return cls(
            id=user_id,
            name=text("name", 255),
            email=text("email", 255),
            phone=text("phone", 32),
            salon_name=text("salon_name", 255),
            salon_ids=tuple(i for i in (as_int(v) for v in named) if i is not None),
        )


def verify_user_data(
    user_data: str | None, user_data_sign: str | None, partner_token: str
) -> MarketplaceUser:
    """The user from a signed redirect; SignatureMissing/SignatureInvalid otherwise.

    The signature is checked (constant time) on the decoded bytes before the JSON is parsed.
    """
    if not user_data or not user_data_sign:
        raise SignatureMissing(
            "the request carries no signed user_data (enable 'transmit user data' for the "
            "application in the YClients developer cabinet)"
        )
    if not partner_token:
        raise SignatureInvalid("YCLIENTS_PARTNER_TOKEN is not set: nothing to verify with")
    raw = decode_user_data(user_data)
    expected = sign_user_data(raw, partner_token)
    given = user_data_sign.strip().lower()
    if not given.isascii() or not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureInvalid("user_data_sign does not match user_data")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise SignatureInvalid("user_data is not JSON") from None
    if not isinstance(data, dict):
        raise SignatureInvalid("user_data is not a JSON object")
    return MarketplaceUser.from_json(data)


_BRANCH_KEY = re.compile(r"^salon_ids\[(\d*)\]$")


class TooManyBranches(ValueError):
    """The redirect names more than MAX_BRANCHES salons."""


def salon_ids_from_query(pairs: Iterable[tuple[str, str]]) -> list[int]:
    """`salon_id`, or the branches `salon_ids[0]`, `salon_ids[1]`, … / `salon_ids[]`, in order,
    each once; values that are not positive integers are ignored. TooManyBranches above
    MAX_BRANCHES."""
    single: list[int] = []
    indexed: list[tuple[int, int, int]] = []
    for position, (key, value) in enumerate(pairs):
        number = as_int(value.strip())
        if number is None or number <= 0:
            continue
        if key == "salon_id":
            single.append(number)
            continue
        match = _BRANCH_KEY.match(key)
        if match:
            index = int(match.group(1)) if match.group(1) else 10**6 + position
            indexed.append((index, position, number))
    ordered = single + [number for _, _, number in sorted(indexed)]
    unique = list(dict.fromkeys(ordered))
    if len(unique) > MAX_BRANCHES:
        raise TooManyBranches(f"{len(unique)} salons in one redirect; at most {MAX_BRANCHES}")
    return unique


def signature_hash(user_data_sign: str) -> str:
    """How a signed URL is remembered (RedirectUse) without keeping the signature itself."""
    return hashlib.sha256(user_data_sign.strip().lower().encode()).hexdigest()


def as_int(value: object) -> int | None:
    """An integer or a string of ASCII digits as an int; None for anything else, and for a
    number no bigint column holds (no YClients id is one; a string of thousands of digits
    would make int() raise)."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 19):
            return None
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -(2**63) <= value < 2**63 else None
