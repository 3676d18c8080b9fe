"""WhatsApp: the gateway client (WAHA), chat ids, the gateway's webhook, the salon's link state
and the watchdog that keeps each salon's session up.

- `gateway`: the `WhatsAppGateway` interface and `WahaGateway`, its WAHA implementation;
- `errors`: what can go wrong talking to the gateway;
- `ids`: chat ids and the phone numbers behind them;
- `webhook`: the webhook's signature and the event's shape;
- `link`: the salon's session and whether it is linked (`whatsapp_connected`);
- `watchdog`: restarts a failed session, a few times, and says when the owner must step in.
"""

from __future__ import annotations

# Submodules import each other, never this package, so core.marketplace can use them too.
from core.whatsapp.errors import (
    GatewayError,
    GatewayNotConfigured,
    GatewayRequestError,
    GatewayUnauthorized,
    GatewayUnavailable,
    QrNotAvailable,
    SessionNotConnected,
    SessionNotFound,
)
from core.whatsapp.gateway import SessionInfo, SessionStatus, WahaGateway, WhatsAppGateway
from core.whatsapp.ids import chat_id_for_phone, phone_from_chat_id, strip_device_suffix
from core.whatsapp.link import (
    WHATSAPP,
    apply_session_status,
    ensure_whatsapp,
    live_status,
    record_whatsapp_state,
    session_name,
    whatsapp_webhook_url,
)
from core.whatsapp.webhook import (
    WEBHOOK_EVENTS,
    WEBHOOK_PATH,
    WebhookBadShape,
    WebhookEvent,
    WebhookInvalidJson,
    WebhookRejected,
    WebhookSignatureMismatch,
    WebhookSignatureMissing,
    WebhookStale,
    WebhookTimestampInvalid,
    sign_webhook,
    verify_webhook,
)

__all__ = [
    "WEBHOOK_EVENTS",
    "WEBHOOK_PATH",
    "WHATSAPP",
    "GatewayError",
    "GatewayNotConfigured",
    "GatewayRequestError",
    "GatewayUnauthorized",
    "GatewayUnavailable",
    "QrNotAvailable",
    "SessionInfo",
    "SessionNotConnected",
    "SessionNotFound",
    "SessionStatus",
    "WahaGateway",
    "WebhookBadShape",
    "WebhookEvent",
    "WebhookInvalidJson",
    "WebhookRejected",
    "WebhookSignatureMismatch",
    "WebhookSignatureMissing",
    "WebhookStale",
    "WebhookTimestampInvalid",
    "WhatsAppGateway",
    "apply_session_status",
    "chat_id_for_phone",
    "ensure_whatsapp",
    "live_status",
    "phone_from_chat_id",
    "record_whatsapp_state",
    "session_name",
    "sign_webhook",
    "strip_device_suffix",
    "verify_webhook",
    "whatsapp_webhook_url",
]
