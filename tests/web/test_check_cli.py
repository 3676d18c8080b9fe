"""`salonbot check` checks everything it names, and a half-configured part fails it.

Through the real entry point: the exact line a user reads and the exit code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from core import db
from core.models import Company, IntegrationStatus
from core.settings import Settings
from tests.fakes.telegram import TOKEN
from tests.fakes.yclients import PARTNER_TOKEN, USER_TOKEN, YClientsEmulator
from tests.web.test_sync_api_and_cli import run_cli
from web.app import create_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
APP_ID = 4242
FIX = " " * 16 + "fix: "


@pytest.fixture
async def yc() -> AsyncIterator[YClientsEmulator]:
    async with YClientsEmulator() as emulator:
        yield emulator


@pytest.fixture
def env(settings: Settings, clean_db: str, tmp_path: Path) -> dict[str, str]:
    """Only the database and a secret key; every part off. (`settings` cleans the process
    environment of outside tokens.)"""
    return {
        "DATABASE_URL": clean_db,
        "SECRET_KEY": "k" * 40,
        "DATA_DIR": str(tmp_path / "data"),
    }


def with_yclients(env: dict[str, str], yc: YClientsEmulator, **extra: str) -> dict[str, str]:
    return {
        **env,
        "YCLIENTS_API_URL": yc.url,
        "YCLIENTS_PARTNER_TOKEN": PARTNER_TOKEN,
        "YCLIENTS_RATE_LIMIT": "1000",
        **extra,
    }


async def check(env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    code, out, err = await asyncio.to_thread(run_cli, ["check"], env, tmp_path)
    assert "Traceback" not in out + err
    return code, out


def line(name: str, status: str, detail: str, fix: str | None = None) -> str:
    text = f"{name:<8}  {status:<4}  {detail}"
    return text + (f"\n{FIX}{fix}" if fix else "")


async def add_salon(clean_db: str, yclients_id: int, user_token: str | None) -> None:
    await db.init_orm(clean_db)
    try:
        await Company.create(
            yclients_id=yclients_id,
            title="Салон",
            hook_token=f"hook-{yclients_id}",
            integration_status=IntegrationStatus.ACTIVE,
            yclients_user_token=user_token,
        )
    finally:
        await db.close_orm()


# --- half-configured parts ---------------------------------------------------------------------

WEBHOOK_SECRET_MISSING = line(
    "telegram",
    "FAIL",
    "TELEGRAM_WEBHOOK_SECRET is not set, and TELEGRAM_MODE=webhook needs it",
    "set it to 32+ random characters, or set TELEGRAM_MODE=polling",
)


async def test_webhook_mode_without_a_secret_fails_check(
    env: dict[str, str], tmp_path: Path
) -> None:
    env |= {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_MODE": "webhook",
        "PUBLIC_BASE_URL": "https://bot.example.com",
    }
    code, out = await check(env, tmp_path)
    assert code == 1
    assert WEBHOOK_SECRET_MISSING in out


async def test_webhook_mode_without_a_public_url_fails_check(
    env: dict[str, str], tmp_path: Path
) -> None:
    env |= {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_MODE": "webhook"}
    env["TELEGRAM_WEBHOOK_SECRET"] = "w" * 32
    code, out = await check(env, tmp_path)
    assert code == 1
    assert (
        line(
            "telegram",
            "FAIL",
            "PUBLIC_BASE_URL is not set, and TELEGRAM_MODE=webhook needs it",
            "set it to the https:// address Telegram reaches this server at "
            "(e.g. https://bot.example.com), or set TELEGRAM_MODE=polling",
        )
        in out
    )


async def test_webhook_mode_with_a_plain_http_url_fails_check(
    env: dict[str, str], tmp_path: Path
) -> None:
    env |= {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_SECRET": "w" * 32,
        "PUBLIC_BASE_URL": "http://bot.example.com",
    }
    code, out = await check(env, tmp_path)
    assert code == 1
    assert (
        line(
            "telegram",
            "FAIL",
            "PUBLIC_BASE_URL is not https://, and Telegram sends webhooks over HTTPS only",
            "put a TLS proxy in front of this server and set PUBLIC_BASE_URL to its https:// "
            "address, or set TELEGRAM_MODE=polling",
        )
        in out
    )


async def test_a_gateway_without_its_hmac_key_fails_check(
    env: dict[str, str], tmp_path: Path
) -> None:
    env |= {"WHATSAPP_GATEWAY_URL": "http://127.0.0.1:9", "WHATSAPP_GATEWAY_API_KEY": "k" * 32}
    code, out = await check(env, tmp_path)
    assert code == 1
    assert (
        line(
            "whatsapp",
            "FAIL",
            "WHATSAPP_WEBHOOK_HMAC_KEY is not set, and WHATSAPP_GATEWAY_URL needs it",
            "set it to 32+ random characters (WAHA signs its webhooks with it)",
        )
        in out
    )


async def test_gateway_keys_without_the_gateway_url_fail_check(
    env: dict[str, str], tmp_path: Path
) -> None:
    env |= {"WHATSAPP_GATEWAY_API_KEY": "k" * 32, "WHATSAPP_WEBHOOK_HMAC_KEY": "h" * 32}
    code, out = await check(env, tmp_path)
    assert code == 1
    assert (
        line(
            "whatsapp",
            "FAIL",
            "WHATSAPP_GATEWAY_URL is not set, but WHATSAPP_GATEWAY_API_KEY is",
            "set it to the WAHA gateway's address (http://waha:3000 under compose), or empty "
            "the WhatsApp keys to keep WhatsApp off",
        )
        in out
    )


async def test_a_user_token_without_the_partner_token_fails_check(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["YCLIENTS_USER_TOKEN"] = USER_TOKEN
    code, out = await check(env, tmp_path)
    assert code == 1
    assert (
        line(
            "yclients",
            "FAIL",
            "YCLIENTS_PARTNER_TOKEN is not set, but YCLIENTS_USER_TOKEN is",
            "set it to the partner token from the YClients developer cabinet (every YClients "
            "call needs it)",
        )
        in out
    )


async def test_parts_without_tokens_are_off_and_check_passes(
    env: dict[str, str], tmp_path: Path
) -> None:
    code, out = await check(env, tmp_path)
    assert code == 0, out
    assert line("telegram", "OFF", "off: TELEGRAM_BOT_TOKEN not set (the Telegram bot)") in out


async def test_a_half_configured_part_is_a_warning_at_start(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    half = settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_mode": "webhook",
            "public_base_url": "https://bot.example.com",
        }
    )
    await aiohttp_client(create_app(half))
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "web.app"]
    assert (
        "WARNING",
        "telegram off: TELEGRAM_WEBHOOK_SECRET is not set, and TELEGRAM_MODE=webhook needs it: "
        "set it to 32+ random characters, or set TELEGRAM_MODE=polling",
    ) in lines
    # A part that is simply not configured stays one INFO line.
    assert ("INFO", "redis off: REDIS_URL not set (FSM kept in memory; fine for one process)") in (
        lines
    )


# --- settings ----------------------------------------------------------------------------------


async def test_a_public_url_without_a_scheme_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["PUBLIC_BASE_URL"] = "bot.example.com"
    code, out, err = await asyncio.to_thread(run_cli, ["check"], env, tmp_path)
    assert code == 2 and out == ""
    assert err == (
        "salonbot: settings: PUBLIC_BASE_URL: must start with https:// (or http://), "
        "e.g. https://bot.example.com\n"
    )


# --- Redis -------------------------------------------------------------------------------------


async def test_redis_answers_ping(env: dict[str, str], tmp_path: Path) -> None:
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    code, out = await check(env, tmp_path)
    assert code == 0, out
    assert line("redis", "OK", "PING answered") in out


async def test_an_unreachable_redis_fails_check(env: dict[str, str], tmp_path: Path) -> None:
    env["REDIS_URL"] = "redis://:secret-password@127.0.0.1:1/0"
    code, out = await check(env, tmp_path)
    assert code == 1
    assert (
        line(
            "redis",
            "FAIL",
            "Redis at 127.0.0.1:1 does not answer (ConnectionError)",
            "check REDIS_URL and that Redis runs and this host reaches it",
        )
        in out
    )
    assert "secret-password" not in out


async def test_a_malformed_redis_url_fails_check(env: dict[str, str], tmp_path: Path) -> None:
    env["REDIS_URL"] = "127.0.0.1:6379"
    code, out = await check(env, tmp_path)
    assert code == 1
    assert (
        line(
            "redis",
            "FAIL",
            "REDIS_URL is not a Redis URL (Redis URL must specify one of the following schemes "
            "(redis://, rediss://, unix://))",
            "use redis://host:6379/0 (redis://redis:6379/0 under compose; rediss:// for TLS)",
        )
        in out
    )


# --- YClients ----------------------------------------------------------------------------------


async def test_the_partner_token_is_tried_before_any_salon_exists(
    env: dict[str, str], yc: YClientsEmulator, tmp_path: Path
) -> None:
    yc.owned_applications.add(APP_ID)
    code, out = await check(with_yclients(env, yc, YCLIENTS_APP_ID=str(APP_ID)), tmp_path)
    assert code == 0, out
    assert (
        line(
            "yclients", "OK", f"partner token accepted (application {APP_ID}); no active salon yet"
        )
        in out
    )
    assert yc.calls_to(f"/marketplace/application/{APP_ID}/salons") == 1


async def test_a_refused_partner_token_fails_check_without_a_salon(
    env: dict[str, str], yc: YClientsEmulator, tmp_path: Path
) -> None:
    yc.owned_applications.add(APP_ID)
    code, out = await check(
        with_yclients(
            env, yc, YCLIENTS_APP_ID=str(APP_ID), YCLIENTS_PARTNER_TOKEN="wrong-partner-token"
        ),
        tmp_path,
    )
    assert code == 1
    assert (
        line(
            "yclients",
            "FAIL",
            "YClients refused YCLIENTS_PARTNER_TOKEN (HTTP 401)",
            "copy the partner token again from the YClients developer cabinet (no spaces "
            "around it; not a user token)",
        )
        in out
    )
    assert "wrong-partner-token" not in out


async def test_an_unknown_application_id_fails_check(
    env: dict[str, str], yc: YClientsEmulator, tmp_path: Path
) -> None:
    code, out = await check(with_yclients(env, yc, YCLIENTS_APP_ID="999"), tmp_path)
    assert code == 1
    assert (
        line(
            "yclients",
            "FAIL",
            "YClients knows no application 999 of this partner token (HTTP 404)",
            "set YCLIENTS_APP_ID to the application id from the YClients developer cabinet, "
            "and YCLIENTS_PARTNER_TOKEN to that application's partner token",
        )
        in out
    )


async def test_without_app_id_or_salon_check_says_the_token_was_not_tried(
    env: dict[str, str], yc: YClientsEmulator, tmp_path: Path
) -> None:
    code, out = await check(with_yclients(env, yc), tmp_path)
    assert code == 0, out
    assert (
        line(
            "yclients",
            "WARN",
            "no YCLIENTS_APP_ID and no active salon: the partner token was not tried",
            "set YCLIENTS_APP_ID (the application id from the YClients developer cabinet), or "
            "add a salon with `salonbot company add`",
        )
        in out
    )


async def test_each_salons_user_token_and_record_rights_are_checked(
    env: dict[str, str], yc: YClientsEmulator, clean_db: str, tmp_path: Path
) -> None:
    for salon in (801, 802, 803, 804):
        yc.add_company(salon)
    yc.without_record_rights.add("token-without-rights")
    await add_salon(clean_db, 801, USER_TOKEN)
    await add_salon(clean_db, 802, "revoked-user-token")
    await add_salon(clean_db, 803, "token-without-rights")
    await add_salon(clean_db, 804, None)
    code, out = await check(with_yclients(env, yc), tmp_path)
    assert code == 1
    assert line("yclients", "OK", "token accepted, records readable for 1 salon(s)") in out
    assert (
        line(
            "yclients",
            "FAIL",
            "salon 802: YClients refused its user token (HTTP 401)",
            "a user token changes when that user's password does: run `salonbot company add "
            "--yclients-id 802 --user-token TOKEN` with a current one",
        )
        in out
    )
    assert (
        line(
            "yclients",
            "FAIL",
            "salon 803: its user token may not read records (HTTP 403)",
            "give that YClients user the right to see records (Settings → Users → access "
            "rights), or use another user's token",
        )
        in out
    )
    assert (
        line(
            "yclients",
            "FAIL",
            "salon 804 has no user token, and YClients wants one to read records (HTTP 403)",
            "run `salonbot company add --yclients-id 804 --user-token TOKEN` with the token of "
            "a YClients user who may see records, or set YCLIENTS_USER_TOKEN",
        )
        in out
    )
    assert "revoked-user-token" not in out and "token-without-rights" not in out


# --- company add --user-token ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (
            "revoked-user-token",
            "salonbot: the user token was not stored: YClients refused it (HTTP 401); copy a "
            "current one (it changes when that user's password does)\n",
        ),
        (
            "token-without-rights",
            "salonbot: the user token was not stored: it may not read salon 901's records "
            "(HTTP 403); give that user the right to see records in YClients (Settings → Users "
            "→ access rights), or use another user's token\n",
        ),
    ],
    ids=["refused", "no-rights"],
)
async def test_company_add_tries_the_user_token_before_storing_it(
    env: dict[str, str],
    yc: YClientsEmulator,
    clean_db: str,
    tmp_path: Path,
    token: str,
    message: str,
) -> None:
    yc.add_company(901)
    yc.without_record_rights.add("token-without-rights")
    args = ["company", "add", "--yclients-id", "901", "--user-token", token]
    code, out, err = await asyncio.to_thread(run_cli, args, with_yclients(env, yc), tmp_path)
    assert (code, out, err) == (1, "", message)
    await db.init_orm(clean_db)
    try:
        assert not await Company.exists(yclients_id=901)
    finally:
        await db.close_orm()
