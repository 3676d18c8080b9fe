"""Process settings, read from the environment and `.env` (names are a contract: DESIGN.md)."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cronsim import CronSim, CronSimError
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

PUBLIC_TELEGRAM_API = "https://api.telegram.org"
# The MAX Bot API's only address since 19 Jul 2026 (shared/reference/max-bot-api.md).
PUBLIC_MAX_API = "https://platform-api2.max.ru"
_MAX_SECRET = re.compile(r"^[A-Za-z0-9_-]{5,256}$")
_TELEGRAM_TOKEN = re.compile(r"^\d{5,}:[A-Za-z0-9_-]{30,}$")


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable and the fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str = ""
    redis_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str = ""
    secret_key: SecretStr | None = None

    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = PUBLIC_TELEGRAM_API
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_secret: SecretStr | None = None
    # For the client links on the onboarding page; unset: asked from the Bot API (getMe).
    telegram_bot_username: str | None = None

    # The MAX bot (bot.max): one Salonbot bot for every salon, the salon chosen by the deep
    # link's payload; polling in development, webhook in production.
    max_bot_token: SecretStr | None = None
    max_api_url: str = PUBLIC_MAX_API
    max_mode: Literal["polling", "webhook"] = "polling"
    max_webhook_secret: SecretStr | None = None

    yclients_api_url: str = "https://api.yclients.com"
    yclients_partner_token: SecretStr | None = None
    yclients_user_token: SecretStr | None = None
    yclients_app_id: int | None = None
    yclients_sync_cron: str = "*/30 * * * *"
    yclients_rate_limit: float = Field(default=5.0, gt=0)
    marketplace_allow_unsigned: bool = False

    whatsapp_gateway_url: str | None = None
    whatsapp_gateway_api_key: SecretStr | None = None
    whatsapp_webhook_hmac_key: SecretStr | None = None
    # Good manners that keep a salon's number from being banned (bot.whatsapp.outbox): a
    # random pause of up to this many seconds, "typing…" meanwhile, before each answer (0: at
    # once), and at most this many messages a minute from one salon's number (0: no limit).
    whatsapp_reply_pause: float = Field(default=2.0, ge=0, le=30)
    whatsapp_send_rate: float = Field(default=20.0, ge=0)
    # Messages a second this replica's visit loop sends through one Telegram bot (Telegram
    # allows about 30): with several replicas, give each its share (30 / replicas).
    telegram_send_rate: float = Field(default=30.0, gt=0, le=30)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"

    # How salon owners reach the operator (an e-mail, a phone or an http(s) URL), shown on the
    # onboarding pages where a problem is not theirs to solve; unset: they are sent to the
    # app's page in the YClients Marketplace.
    support_contact: str | None = None

    @field_validator(
        "redis_url",
        "telegram_bot_username",
        "yclients_app_id",
        "whatsapp_gateway_url",
        "secret_key",
        "telegram_bot_token",
        "telegram_webhook_secret",
        "yclients_partner_token",
        "yclients_user_token",
        "whatsapp_gateway_api_key",
        "whatsapp_webhook_hmac_key",
        "max_bot_token",
        "max_webhook_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `FOO=` in .env means "not configured", as it does for every shell user.
        return None if value == "" else value

    @field_validator("telegram_bot_username")
    @classmethod
    def _bare_username(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().removeprefix("@")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", name):
            raise ValueError("is not a Telegram bot username (e.g. salon_bonus_bot, no https://)")
        return name

    @field_validator("support_contact", mode="before")
    @classmethod
    def _contact_shape(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return None
        if support_contact_kind(value) is None:
            raise ValueError(
                "must be an e-mail (support@example.com), a phone number (+7 900 000-00-00) "
                "or an http(s) URL (https://example.com/support)"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "telegram_bot_token",
        "yclients_partner_token",
        "yclients_user_token",
        "whatsapp_gateway_api_key",
        "max_bot_token",
    )
    @classmethod
    def _no_padding(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raw = value.get_secret_value()
            if raw != raw.strip():
                raise ValueError("has spaces or a line break around it; remove them")
            if not raw.isascii():
                raise ValueError("has non-ASCII characters; copy the token again as plain text")
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _telegram_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TELEGRAM_TOKEN.match(value.get_secret_value()):
            raise ValueError(
                "does not look like a bot token (digits, a colon, then 35 symbols); "
                "copy it again from @BotFather"
            )
        return value

    @field_validator("max_webhook_secret")
    @classmethod
    def _max_secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # MAX sends it back in X-Max-Bot-Api-Secret and accepts only this alphabet.
        if value is not None and not _MAX_SECRET.match(value.get_secret_value()):
            raise ValueError(
                "must be 5 to 256 letters, digits, '_' or '-' (MAX accepts no other); "
                'e.g. python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgres://", "postgresql://")):
            raise ValueError(
                "must start with sqlite:// or postgres:// "
                "(e.g. postgres://user:pass@host:5432/salonbot)"
            )
        return value.replace("postgresql://", "postgres://", 1)

    @field_validator("yclients_sync_cron")
    @classmethod
    def _cron_spec(cls, value: str) -> str:
        try:
            CronSim(value, datetime.now())
        except CronSimError as exc:
            raise ValueError(
                f"is not a cron schedule ({exc}); e.g. '*/30 * * * *' for every 30 minutes"
            ) from None
        return value

    @field_validator("public_base_url", "telegram_api_url", "yclients_api_url", "max_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("public_base_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        # Webhook URLs and links are built on it; "bot.example.com" would give relative ones.
        if not value:
            return value
        message = "must start with https:// (or http://), e.g. https://bot.example.com"
        try:
            parsed = urlsplit(value)
            parsed.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError(message) from None
        if parsed.scheme not in ("http", "https") or not parsed.hostname or " " in value:
            raise ValueError(message)
        if parsed.query or parsed.fragment:
            raise ValueError("must not have a ?query or #fragment, e.g. https://bot.example.com")
        return value

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite://{self.data_dir / 'salonbot.sqlite3'}"

    @property
    def uses_postgres(self) -> bool:
        return self.db_url.startswith("postgres://")

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.http_host}:{self.http_port}"


_EMAIL = re.compile(r"^[^@\s/:]+@[^@\s/:]+\.[^@\s/:]+$")
_PHONE = re.compile(r"^\+?[\d ()\-]{5,24}$")
_URL = re.compile(r"^https?://[^\s/?#]+\.[^\s/?#]+(?:[/?#]\S*)?$")


def support_contact_kind(value: str) -> Literal["email", "phone", "url"] | None:
    """What SUPPORT_CONTACT holds (the page links it as mailto:, tel: or the URL itself)."""
    if _URL.match(value):
        return "url"
    if _EMAIL.match(value):
        return "email"
    if _PHONE.match(value) and sum(ch.isdigit() for ch in value) >= 5:
        return "phone"
    return None


def load_settings(**overrides: object) -> Settings:
    """Read settings; a bad value becomes a SettingsError naming the variable and the fix."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}: {message}")
        raise SettingsError("; ".join(lines)) from None
    _resolve_secret_key(settings)
    return settings


def _resolve_secret_key(settings: Settings) -> None:
    if settings.secret_key is not None:
        if len(settings.secret_key.get_secret_value()) < 32:
            raise SettingsError(
                "SECRET_KEY: too short; use at least 32 random characters "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        return
    if settings.uses_postgres:
        raise SettingsError(
            "SECRET_KEY: required when DATABASE_URL is PostgreSQL; set it to 32+ random "
            'characters (python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )
    path = settings.data_dir / "secret_key"
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key + "\n", encoding="utf-8")
        path.chmod(0o600)
        log.warning("SECRET_KEY is not set: generated one into %s (set it for production)", path)
    settings.secret_key = SecretStr(key)
