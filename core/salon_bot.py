"""A salon's own Telegram bot: the token an owner brings from @BotFather.

The token is one of the salon's settings (`telegram_bot_token` in core.salon_settings, so every
change is validated once and audited): `parse_token` checks its shape, `prepare` asks Telegram
who the bot is (`getMe`) and returns the columns to store with it — the bot's id and username
and a fresh opaque `telegram_bot_key` for its webhook route. The running service picks the
change up within a minute (web.salon_bots); `set_salon_bot` is the call for the owner's page.

The webhook secret Telegram sends with each of the bot's updates is not stored: it is derived
from SECRET_KEY and the bot's key (`webhook_secret`), so a database dump alone cannot forge
updates. The token is never logged, never put in a URL we serve, and shown only as a short
fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from core.models import Company, SettingChange
from core.settings import PUBLIC_TELEGRAM_API

if TYPE_CHECKING:
    from core.salon_settings import Change

KEY = "telegram_bot_token"
# What @BotFather hands out: the bot's numeric id, a colon, 35 URL-safe characters (a little
# latitude either way: the length is Telegram's business).
_SHAPE = re.compile(r"[0-9]{5,20}:[A-Za-z0-9_-]{30,100}")
_ACTOR_TELEGRAM = "telegram"


class TokenRefused(ValueError):
    """One sentence naming the setting and the fix."""


def parse_token(text: str) -> str | None:
    """The token to store, or None when `text` does not look like one."""
    token = text.strip()
    return token if _SHAPE.fullmatch(token) else None


def fingerprint(token: str | None) -> str:
    """How a token is shown (`company show`, the audit log): the bot's public id and a short
    hash that tells two tokens of one bot apart, never the token."""
    if not token:
        return "off"
    bot_id = token.split(":", 1)[0]
    return f"bot {bot_id} ({hashlib.sha256(token.encode()).hexdigest()[:8]})"


def webhook_secret(secret_key: str, bot_key: str) -> str:
    """The X-Telegram-Bot-Api-Secret-Token of one salon bot (64 hex characters, inside what
    Telegram allows: 1-256 of A-Z a-z 0-9 _ -)."""
    return hmac.new(
        secret_key.encode(), f"salon-bot-webhook:{bot_key}".encode(), hashlib.sha256
    ).hexdigest()


async def get_me(token: str, *, api_url: str) -> dict[str, Any]:
    """Telegram's `getMe` for `token`; TokenRefused says what is wrong in one sentence."""
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.get(f"{api_url}/bot{token}/getMe")
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        # Never the exception's text: httpx puts the URL, and so the token, in it.
        raise TokenRefused(
            f"{KEY}: Telegram could not be asked about the bot ({type(exc).__name__}); "
            "try again in a minute, or check TELEGRAM_API_URL"
        ) from None
    if response.status_code in (401, 404):
        raise TokenRefused(
            f"{KEY}: Telegram does not accept this token; copy it again from @BotFather "
            "(/mybots → the bot → API Token), or write off to remove the salon's bot"
        )
    result = body.get("result") if isinstance(body, dict) and body.get("ok") else None
    if not isinstance(result, dict) or not isinstance(result.get("id"), int):
        raise TokenRefused(
            f"{KEY}: Telegram answered getMe with HTTP {response.status_code}; try again in a "
            "minute, or check TELEGRAM_API_URL"
        )
    return result


async def prepare(
    company: Company, token: str | None, *, api_url: str, shared_bot_id: int | None = None
) -> dict[str, Any]:
    """The company's columns that go with `token` (None: the salon's bot is removed), after
    asking Telegram about it. Refused: a token Telegram does not accept, the shared bot's
    own, or a bot another salon already has."""
    if token is None:
        return _off()
    me = await get_me(token, api_url=api_url)
    bot_id = int(me["id"])
    if shared_bot_id is not None and bot_id == shared_bot_id:
        raise TokenRefused(
            f"{KEY}: this is Salonbot's shared bot; create a bot of the salon's own with "
            "@BotFather (/newbot) and give its token"
        )
    taken = await Company.filter(telegram_bot_id=bot_id).exclude(id=company.id).exists()
    if taken:
        raise TokenRefused(
            f"{KEY}: @{me.get('username')} is already another salon's bot; create a new one "
            "for this salon with @BotFather (/newbot)"
        )
    return {
        "telegram_bot_id": bot_id,
        "telegram_bot_username": str(me.get("username") or "")[:64] or None,
        # A new key for every token: the old route stops working with the old token.
        "telegram_bot_key": secrets.token_urlsafe(24),
        "telegram_bot_revoked_at": None,
    }


def _off() -> dict[str, Any]:
    return {
        "telegram_bot_id": None,
        "telegram_bot_username": None,
        "telegram_bot_key": None,
    }


async def set_salon_bot(
    company: Company,
    token: str | None,
    *,
    actor: str = "owner-page",
    api_url: str = PUBLIC_TELEGRAM_API,
    shared_bot_id: int | None = None,
) -> list[Change]:
    """Give the salon its own bot (`token` from @BotFather) or take it away (None). Raises
    core.salon_settings.SettingError with one sentence when the token will not do."""
    # Imported here: core.salon_settings registers this module's key and imports it.
    from core import salon_settings

    return await salon_settings.change(
        company,
        {KEY: token or salon_settings.OFF},
        actor=actor,
        telegram_api_url=api_url,
        shared_bot_id=shared_bot_id,
    )


async def switch_off_refused(company_id: int, token: str, *, now: datetime) -> Company | None:
    """Telegram refused the salon bot's `token` (401: revoked, or replaced in @BotFather):
    switch it off, unless the salon has another token by now. Returns the salon when this
    call switched it off (its admins are to be told), None otherwise."""
    cleared = await Company.filter(id=company_id, telegram_bot_token=token).update(
        telegram_bot_token=None, telegram_bot_key=None, telegram_bot_revoked_at=now
    )
    if not cleared:
        return None
    await SettingChange.create(
        company_id=company_id,
        actor=_ACTOR_TELEGRAM,
        key=KEY,
        old_value=fingerprint(token),
        new_value="off",
    )
    return await Company.get_or_none(id=company_id)
