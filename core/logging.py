"""One logging set-up: readable lines in a terminal, JSON lines with LOG_FORMAT=json.

Secrets and personal data are never passed to a logger on purpose; as a second guard the
handler's formatter redacts the whole rendered record — message, arguments, traceback, stack
and JSON extras — after formatting, so nothing a library puts into an exception escapes. It
masks every configured secret value, and by pattern: the path secret of
`/webhook/yclients/<hook token>` and `/webhook/telegram/<secret>` (so salons' hook tokens need
no database lookup, and tokens created after start-up are covered too), credentials in query
strings and `Bearer` headers, bot tokens and salon api keys, phone numbers, WhatsApp chat ids
and e-mail addresses.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from core.phones import mask_chat_id, mask_phone, normalize_phone

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

_MASK = "***"
_PHONE = r"\+?\d(?:[\s()-]{0,2}\d){9,14}"
_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # The path segment is the credential of these webhooks.
    (re.compile(r"(/webhook/(?:yclients|telegram)/(?:bot/)?)[^/\s?#'\"\\<>]+"), r"\1" + _MASK),
    (
        re.compile(
            r"([?&;](?:token|user_data|user_data_sign|partner_token|api_key|hmac)=)[^&;\s'\"#]+",
            re.IGNORECASE,
        ),
        r"\1" + _MASK,
    ),
    (re.compile(r"\b(Bearer\s+)[^\s'\",]+", re.IGNORECASE), r"\1" + _MASK),
    # A Telegram bot token (`123456:AA…`) and a salon's api key (`sb_…`).
    (re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}"), _MASK),
    (re.compile(r"\bsb_[A-Za-z0-9_-]{16,}"), "sb_" + _MASK),
    (
        re.compile(r"\b\d{6,20}(?::\d+)?@(?:c\.us|s\.whatsapp\.net|lid)\b"),
        lambda m: mask_chat_id(m.group(0)),
    ),
    (
        re.compile(r"((?:phone\w*|tel)['\"]?\s*[:=]\s*['\"]?)(" + _PHONE + r")\b", re.IGNORECASE),
        lambda m: m.group(1) + _mask_phone_text(m.group(2)),
    ),
    (re.compile(r"(?<![\w+])\+\d(?:[\s()-]{0,2}\d){9,14}\b"), lambda m: _mask_phone_text(m[0])),
    (
        re.compile(
            r"\b([\w.%+-])[\w.%+-]{0,63}@(?!(?:c\.us|s\.whatsapp\.net|g\.us|lid)\b)([\w-]+\.[\w.-]+)"
        ),
        r"\1" + _MASK + r"@\2",
    ),
]


_SECRET_KEY = re.compile(
    r"token|secret|password|passwd|api_?key|(^|_)sign($|_)|hmac|authorization", re.I
)
_PHONE_KEY = re.compile(r"phone|^tel$", re.I)


def _mask_phone_text(text: str) -> str:
    return mask_phone(normalize_phone(text) or "+" + "".join(ch for ch in text if ch.isdigit()))


class Redactor:
    """Masks secrets and personal data in rendered log text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-ready copy of `value` with every string redacted (other objects as `str`)."""
        if isinstance(value, str):
            return self(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {self(str(k)): self._field(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        return self(str(value))

    def _field(self, key: str, value: Any) -> Any:
        # A structured field is judged by its name too: `phone` may hold any spelling of one.
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            if _SECRET_KEY.search(key):
                return _MASK
            if _PHONE_KEY.search(key) and sum(ch.isdigit() for ch in str(value)) >= 7:
                return _mask_phone_text(str(value))
        return self.value(value)


class ConsoleFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self._redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(self._redact.value(out), ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "console", secrets: Iterable[str] = ()) -> None:
    redact = Redactor(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else ConsoleFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request access lines belong to /metrics, not the log.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # httpx logs every outgoing request at INFO: two or three lines per WhatsApp answer. Our
    # clients log what failed themselves; DEBUG still shows every request.
    quiet = logging.getLevelName(level) > logging.DEBUG
    logging.getLogger("httpx").setLevel(logging.WARNING if quiet else logging.DEBUG)
    logging.getLogger("tortoise").setLevel(max(logging.WARNING, logging.getLevelName(level)))
