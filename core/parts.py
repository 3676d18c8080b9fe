"""Which parts of Salonbot are on, and why a part is off (for logs, /health, `check`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.settings import Settings

# What /health says of a part: on and working, off by configuration, or on and failing to
# reach its outside system (core.health.PartStates).
State = Literal["ok", "off", "failing"]


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    enabled: bool
    reason: str

    @property
    def state(self) -> State:
        """As configured; a running part that cannot reach its system is `failing` instead."""
        return "ok" if self.enabled else "off"


def parts(settings: Settings) -> list[Part]:
    def part(name: str, missing: list[str], what: str) -> Part:
        if missing:
            return Part(name, False, f"off: {', '.join(missing)} not set ({what})")
        return Part(name, True, "on")

    telegram_missing = [] if settings.telegram_bot_token else ["TELEGRAM_BOT_TOKEN"]
    if settings.telegram_mode == "webhook" and not settings.telegram_webhook_secret:
        telegram_missing.append("TELEGRAM_WEBHOOK_SECRET")
    return [
        part("telegram", telegram_missing, "the Telegram bot"),
        part(
            "yclients",
            [] if settings.yclients_partner_token else ["YCLIENTS_PARTNER_TOKEN"],
            "booking sync and marketplace onboarding; record webhooks still work",
        ),
        part(
            "whatsapp",
            [
                name
                for name, value in (
                    ("WHATSAPP_GATEWAY_URL", settings.whatsapp_gateway_url),
                    ("WHATSAPP_GATEWAY_API_KEY", settings.whatsapp_gateway_api_key),
                    ("WHATSAPP_WEBHOOK_HMAC_KEY", settings.whatsapp_webhook_hmac_key),
                )
                if not value
            ],
            "the WhatsApp channel",
        ),
        part(
            "redis",
            [] if settings.redis_url else ["REDIS_URL"],
            "FSM kept in memory; fine for one process",
        ),
    ]
