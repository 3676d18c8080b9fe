"""One JSON decoder for every body that comes from outside (webhooks, the onboarding API).

A body is someone else's bytes: whatever they are, `decode` returns a value every later step
can keep, or raises `InvalidJson` with a reason the caller answers with a 400. Refused: what
is not JSON, `NaN`/`Infinity` and numbers beyond a float (no JSON column stores them, so an
event holding one could never be stored and would be retried for ever), integers too long to
read, and nesting deeper than `MAX_DEPTH` (the standard decoder recurses per level).
"""

from __future__ import annotations

import json
import math
from typing import Any

# Real events are a few levels deep; a deeper body is refused before anything recurses on it.
MAX_DEPTH = 32


class InvalidJson(ValueError):
    """The body is not JSON this service takes; the message says why."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # `1e400` parses as infinity, which no JSON column can store.
        raise ValueError(f"{text} is out of range")
    return value


# json.loads with these hooks would build a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def decode(raw: bytes) -> Any:
    """The JSON value of a request body, or InvalidJson. The encoding is told from the first
    bytes (UTF-8, -16 or -32, as json.loads does), never from a Content-Type charset, which
    the sender controls and may name a codec that does not exist."""
    try:
        # A string's lone surrogates are kept (the inbox repairs them); bytes that are no
        # UTF-8 at all are not JSON.
        value = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, RecursionError) as exc:
        # ValueError: not JSON, a constant or number refused above, an integer of more than
        # 4300 digits, or bytes that are not text. RecursionError: nesting the decoder could
        # not climb down.
        raise InvalidJson(f"invalid JSON: {exc}") from None
    if too_deep(value):
        raise InvalidJson(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def too_deep(value: object) -> bool:
    """Whether objects and arrays nest more than MAX_DEPTH levels; walked level by level,
    keeping only the containers."""
    level = [value]
    for _ in range(MAX_DEPTH):
        inner: list[object] = []
        for item in level:
            if isinstance(item, dict):
                inner.extend(v for v in item.values() if isinstance(v, dict | list))
            elif isinstance(item, list):
                inner.extend(v for v in item if isinstance(v, dict | list))
        if not inner:
            return False
        level = inner
    return True


def clean_text(value: object) -> bool:
    """Whether `value` is a string every database keeps as it is: no NUL, no lone surrogate
    (what a JSON `\\u0000` or `\\udc80` escape gives). For the fields that name or key
    something (a session, an event type); elsewhere the inbox repairs such characters."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
