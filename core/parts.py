"""Which parts of Salonbot are on, and why a part is off (for logs, /health, `check`).

A part whose credential is not set is simply off (one INFO line). A part that was meant to run
(its token or address is set) but lacks what it needs to run is *half-configured*: it stays off
too, but start-up says so at WARNING and `salonbot check` fails, naming the variable and the fix
(`half_configured`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.settings import PUBLIC_MAX_API, PUBLIC_TELEGRAM_API, Settings

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


@dataclass(frozen=True, slots=True)
class Misconfigured:
    """What a half-configured part lacks: `detail` names the variable, `fix` says what to do."""

    part: str
    variable: str
    detail: str
    fix: str

    @property
    def sentence(self) -> str:
        return f"{self.detail}: {self.fix}"


def half_configured(settings: Settings) -> list[Misconfigured]:
    found: list[Misconfigured] = []

    if settings.telegram_bot_token and settings.telegram_mode == "webhook":
        webhook = "TELEGRAM_MODE=webhook needs it"
        polling = "or set TELEGRAM_MODE=polling"
        if not settings.telegram_webhook_secret:
            found.append(
                Misconfigured(
                    "telegram",
                    "TELEGRAM_WEBHOOK_SECRET",
                    f"TELEGRAM_WEBHOOK_SECRET is not set, and {webhook}",
                    f"set it to 32+ random characters, {polling}",
                )
            )
        if not settings.public_base_url:
            found.append(
                Misconfigured(
                    "telegram",
                    "PUBLIC_BASE_URL",
                    f"PUBLIC_BASE_URL is not set, and {webhook}",
                    "set it to the https:// address Telegram reaches this server at "
                    f"(e.g. https://bot.example.com), {polling}",
                )
            )
        elif (
            not settings.public_base_url.startswith("https://")
            and settings.telegram_api_url == PUBLIC_TELEGRAM_API
        ):
            found.append(
                Misconfigured(
                    "telegram",
                    "PUBLIC_BASE_URL",
                    "PUBLIC_BASE_URL is not https://, and Telegram sends webhooks over HTTPS only",
                    "put a TLS proxy in front of this server and set PUBLIC_BASE_URL to its "
                    f"https:// address, {polling}",
                )
            )

    if settings.max_bot_token and settings.max_mode == "webhook":
        polling = "or set MAX_MODE=polling"
        if not settings.max_webhook_secret:
            found.append(
                Misconfigured(
                    "max",
                    "MAX_WEBHOOK_SECRET",
                    "MAX_WEBHOOK_SECRET is not set, and MAX_MODE=webhook needs it",
                    f"set it to 32 random letters, digits, '_' or '-', {polling}",
                )
            )
        if (
            not settings.public_base_url.startswith("https://")
            and settings.max_api_url == PUBLIC_MAX_API
        ):
            found.append(
                Misconfigured(
                    "max",
                    "PUBLIC_BASE_URL",
                    "PUBLIC_BASE_URL is not an https:// address, and MAX sends webhooks over "
                    "HTTPS to port 443 only",
                    f"put a TLS proxy in front of this server and set PUBLIC_BASE_URL to its "
                    f"https:// address, {polling}",
                )
            )

    if settings.whatsapp_gateway_url:
        if not settings.whatsapp_gateway_api_key:
            found.append(
                Misconfigured(
                    "whatsapp",
                    "WHATSAPP_GATEWAY_API_KEY",
                    "WHATSAPP_GATEWAY_API_KEY is not set, and WHATSAPP_GATEWAY_URL needs it",
                    "set it to the WAHA_API_KEY the WAHA container runs with",
                )
            )
        if not settings.whatsapp_webhook_hmac_key:
            found.append(
                Misconfigured(
                    "whatsapp",
                    "WHATSAPP_WEBHOOK_HMAC_KEY",
                    "WHATSAPP_WEBHOOK_HMAC_KEY is not set, and WHATSAPP_GATEWAY_URL needs it",
                    "set it to 32+ random characters (WAHA signs its webhooks with it)",
                )
            )
    elif settings.whatsapp_gateway_api_key or settings.whatsapp_webhook_hmac_key:
        given = (
            "WHATSAPP_GATEWAY_API_KEY"
            if settings.whatsapp_gateway_api_key
            else "WHATSAPP_WEBHOOK_HMAC_KEY"
        )
        found.append(
            Misconfigured(
                "whatsapp",
                "WHATSAPP_GATEWAY_URL",
                f"WHATSAPP_GATEWAY_URL is not set, but {given} is",
                "set it to the WAHA gateway's address (http://waha:3000 under compose), "
                "or empty the WhatsApp keys to keep WhatsApp off",
            )
        )

    if not settings.yclients_partner_token and (
        settings.yclients_user_token or settings.yclients_app_id
    ):
        given = "YCLIENTS_USER_TOKEN" if settings.yclients_user_token else "YCLIENTS_APP_ID"
        found.append(
            Misconfigured(
                "yclients",
                "YCLIENTS_PARTNER_TOKEN",
                f"YCLIENTS_PARTNER_TOKEN is not set, but {given} is",
                "set it to the partner token from the YClients developer cabinet "
                "(every YClients call needs it)",
            )
        )
    return found


def parts(settings: Settings) -> list[Part]:
    problems = half_configured(settings)

    def part(name: str, missing: list[str], what: str) -> Part:
        own = [p.sentence for p in problems if p.part == name]
        if own:
            return Part(name, False, f"off: {'; '.join(own)}")
        if missing:
            return Part(name, False, f"off: {', '.join(missing)} not set ({what})")
        return Part(name, True, "on")

    return [
        part(
            "telegram",
            [] if settings.telegram_bot_token else ["TELEGRAM_BOT_TOKEN"],
            "the Telegram bot",
        ),
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
        part("max", [] if settings.max_bot_token else ["MAX_BOT_TOKEN"], "the MAX bot"),
        part(
            "redis",
            [] if settings.redis_url else ["REDIS_URL"],
            "FSM kept in memory; fine for one process",
        ),
    ]
