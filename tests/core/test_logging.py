"""The log handler redacts the whole rendered record: message, arguments, traceback, stack and
JSON extras, in both formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core.logging import ConsoleFormatter, JsonFormatter, Redactor, setup_logging
from core.marketplace import MarketplaceUser

TELEGRAM_SECRET = "tg-webhook-secret-0123456789abcdef"
HOOK_TOKEN = "Zm9vYmFyLWhvb2stdG9rZW4tbm90LWNvbmZpZ3VyZWQ"  # a salon's: never configured
PARTNER_TOKEN = "partner-token-abcdef123456"
PHONE = "+79001234567"
CHAT_ID = "79001234567@c.us"
EMAIL = "owner@salon.example"
LEAKS = [TELEGRAM_SECRET, HOOK_TOKEN, PARTNER_TOKEN, "9001234567", "1234567@", EMAIL, "owner@"]


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    try:
        yield out
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def _use(stream: io.StringIO, fmt: str) -> logging.Logger:
    setup_logging("DEBUG", fmt, [TELEGRAM_SECRET, PARTNER_TOKEN])
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return logging.getLogger("salonbot.test")


def _fail_like_aiohttp() -> None:
    # What aiohttp's parser raises for an over-long request line: the line, with its path
    # secret, inside the exception text.
    line = f"POST /webhook/telegram/{TELEGRAM_SECRET} HTTP/1.1 and /webhook/yclients/{HOOK_TOKEN}"
    raise ValueError(f"Got more than 8190 bytes when reading: {line!r}; from {CHAT_ID} {PHONE}")


def _log_everything(log: logging.Logger) -> None:
    user = MarketplaceUser(
        id=7, name="Ирина", email=EMAIL, phone="79001234567", salon_name="Роза", salon_ids=(1,)
    )
    try:
        _fail_like_aiohttp()
    except ValueError:
        log.exception(
            "request failed for %s (partner_token=%s)",
            CHAT_ID,
            PARTNER_TOKEN,
            extra={
                "user": user,
                "path": f"/webhook/yclients/{HOOK_TOKEN}",
                "details": {"phone": "8 (900) 123-45-67", "emails": [EMAIL]},
            },
            stack_info=True,
        )


def test_console_output_redacts_the_traceback_and_the_message(stream: io.StringIO) -> None:
    _log_everything(_use(stream, "console"))
    text = stream.getvalue()
    assert "Traceback" in text and "Stack (most recent call last)" in text
    for leak in LEAKS:
        assert leak not in text
    assert "/webhook/telegram/***" in text and "/webhook/yclients/***" in text
    assert "***4567@c.us" in text and "+7 *** ***-45-67" in text


def test_json_output_redacts_the_exception_field_and_the_extras(stream: io.StringIO) -> None:
    _log_everything(_use(stream, "json"))
    text = stream.getvalue()
    for leak in LEAKS:
        assert leak not in text
    line = json.loads(text)
    assert "/webhook/telegram/***" in line["exception"] and "+7 *** ***-45-67" in line["exception"]
    assert line["message"] == "request failed for ***4567@c.us (partner_token=***)"
    assert line["path"] == "/webhook/yclients/***"
    assert "o***@salon.example" in line["user"] and "id=7" in line["user"]
    assert line["details"] == {"phone": "+7 *** ***-45-67", "emails": ["o***@salon.example"]}
    assert "_log_everything" in line["stack"]


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (
            "GET /marketplace/onboarding?token=eyJhbGciOi.x.y HTTP/1.1",
            "GET /marketplace/onboarding?token=*** HTTP/1.1",
        ),
        ("Authorization: Bearer sb_abc.def", "Authorization: Bearer ***"),
        ("key sb_" + "k" * 43 + " refused", "key sb_*** refused"),
        ("bot 123456789:" + "A" * 35 + "/getMe", "bot ***/getMe"),
        ("chat 79001234567:12@c.us", "chat ***4567@c.us"),
        ("hidden 123456789012345@lid", "hidden ***2345@lid"),
        ("{'phone': '79001234567'}", "{'phone': '+7 *** ***-45-67'}"),
        ("call +7 900 123-45-67 now", "call +7 *** ***-45-67 now"),
        ("postgres://salonbot:pw@db.local/salonbot", "postgres://salonbot:p***@db.local/salonbot"),
        # Ids, times and amounts stay readable.
        ("inbox event 1234567890 at 2026-11-21T10:00:00+03:00, +150 -> 300",) * 2,
        ("/webhook/yclients refused", "/webhook/yclients refused"),
    ],
)
def test_patterns(raw: str, masked: str) -> None:
    assert Redactor()(raw) == masked


def test_formatters_do_not_change_the_record() -> None:
    """Other handlers (pytest's, a future one) see the record as it was logged."""
    record = logging.makeLogRecord({"msg": "to %s", "args": (PHONE,)})
    assert PHONE not in ConsoleFormatter(Redactor()).format(record)
    assert PHONE not in JsonFormatter(Redactor()).format(record)
    assert record.getMessage() == f"to {PHONE}"
