"""The gateway's webhook: its signature, checked on the raw bytes before anything parses
them, and the event's shape.

The `X-Webhook-Timestamp` header is not covered by the HMAC, so the freshness check only stops
lazy replays; the real guard is the dedupe on the (signed) event id in the inbox.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core import jsonbody
from core.whatsapp.errors import GatewayNotConfigured
from core.whatsapp.ids import phone_from_chat_id

WEBHOOK_PATH = "/webhook/whatsapp"
WEBHOOK_EVENTS = ("message", "session.status")


class WebhookRejected(Exception):
    """An incoming webhook request that must not be acted on; `status` is the HTTP answer."""

    status: int = 400


class WebhookSignatureMissing(WebhookRejected):
    status = 401


class WebhookSignatureMismatch(WebhookRejected):
    status = 401


class WebhookTimestampInvalid(WebhookRejected):
    """`X-Webhook-Timestamp` is missing or not milliseconds since the epoch."""

    status = 400


class WebhookStale(WebhookRejected):
    status = 400


class WebhookInvalidJson(WebhookRejected):
    status = 400


class WebhookBadShape(WebhookRejected):
    status = 400


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    event: str
    session: str
    timestamp_ms: int
    payload: dict[str, Any]
    me_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # The whole event as it was parsed, for the inbox.
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def me_phone(self) -> str | None:
        return phone_from_chat_id(self.me_id)


# ---------------------------------------------------------------------------------------------
# Webhook verification


def sign_webhook(raw_body: bytes, key: str) -> str:
    """Hex HMAC-SHA512 of the raw body, as WAHA puts it in `X-Webhook-Hmac`."""
    return hmac.new(key.encode(), raw_body, hashlib.sha512).hexdigest()


def verify_webhook(
    raw_body: bytes,
    headers: Mapping[str, str],
    *,
    key: str,
    now_ms: int | None = None,
    max_age_s: float = 300,
) -> WebhookEvent:
    """Check a WAHA webhook request and parse it; raise a `WebhookRejected` subclass if not."""
    if not key:
        raise GatewayNotConfigured("WHATSAPP_WEBHOOK_HMAC_KEY is not set")
    lowered = {name.lower(): value for name, value in headers.items()}
    received = lowered.get("x-webhook-hmac", "").strip().lower()
    if not received:
        raise WebhookSignatureMissing("X-Webhook-Hmac is missing")
    algorithm = lowered.get("x-webhook-hmac-algorithm", "sha512").strip().lower()
    expected = sign_webhook(raw_body, key)
    # A hex digest is ASCII; anything else (a header that was not even UTF-8 arrives with lone
    # surrogates, which .encode() refuses) is compared as "-", so every refusal costs the same.
    given = received if received.isascii() else "-"
    matches = hmac.compare_digest(given.encode(), expected.encode())
    if not matches or algorithm != "sha512":
        raise WebhookSignatureMismatch("X-Webhook-Hmac does not match the body")

    raw_ts = lowered.get("x-webhook-timestamp", "").strip()
    # Milliseconds since the epoch have 13 digits; thousands would make int() raise.
    if not (raw_ts.isascii() and raw_ts.isdigit() and len(raw_ts) <= 16):
        raise WebhookTimestampInvalid("X-Webhook-Timestamp is missing or not milliseconds")
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if abs(now - int(raw_ts)) > max_age_s * 1000:
        raise WebhookStale(f"X-Webhook-Timestamp is {(now - int(raw_ts)) / 1000:.0f} s off")

    try:
        data = jsonbody.decode(raw_body)
    except jsonbody.InvalidJson as exc:
        raise WebhookInvalidJson(f"body is not JSON: {exc}") from None
    return _parse_event(data)


def _parse_event(data: object) -> WebhookEvent:
    if not isinstance(data, dict):
        raise WebhookBadShape("body is not a JSON object")
    for name in ("id", "event", "session"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise WebhookBadShape(f"`{name}` is missing or not a string")
        if not jsonbody.clean_text(data[name]):
            # They key the inbox and name the salon's session: no database keeps a NUL.
            raise WebhookBadShape(f"`{name}` holds a NUL or an invalid character")
    timestamp = data.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise WebhookBadShape("`timestamp` is missing or not an integer")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise WebhookBadShape("`payload` is missing or not an object")
    me = data.get("me")
    if me is not None and not isinstance(me, dict):
        raise WebhookBadShape("`me` is not an object")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise WebhookBadShape("`metadata` is not an object")
    me_id = me.get("id") if me else None
    return WebhookEvent(
        id=data["id"],
        event=data["event"],
        session=data["session"],
        timestamp_ms=timestamp,
        payload=payload,
        me_id=me_id if isinstance(me_id, str) else None,
        metadata=metadata or {},
        data=data,
    )
