"""`salonbot check`: a plain verdict per part, and the fix for a failure."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from core import db
from core.models import Company, IntegrationStatus
from core.parts import parts
from core.settings import Settings
from core.whatsapp import (
    GatewayError,
    GatewayNotConfigured,
    GatewayUnauthorized,
    GatewayUnavailable,
    WahaGateway,
)
from core.yclients import YClientsClient, YClientsError


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str  # "ok", "off" or "fail"
    detail: str
    fix: str = ""


async def check_database(settings: Settings) -> CheckResult:
    backend = "PostgreSQL" if settings.uses_postgres else f"SQLite ({settings.db_url[9:]})"
    try:
        await db.init_orm(settings.db_url)
        try:
            await db.ping()
            pending = await db.pending_migrations()
        finally:
            await db.close_orm()
    except Exception as exc:
        # The same sentence the other commands print for this failure.
        failure = db.describe(exc, settings.db_url)
        if failure is not None:
            return CheckResult("database", "fail", failure.problem, failure.fix)
        fix = (
            "check DATABASE_URL and that the server is running and accepts this user"
            if settings.uses_postgres
            else "check that DATA_DIR is writable"
        )
        return CheckResult("database", "fail", f"{backend}: {type(exc).__name__}: {exc}", fix)
    if pending:
        return CheckResult(
            "database",
            "fail",
            f"{backend}: {len(pending)} migration(s) not applied",
            "run `salonbot migrate` (serve applies them too)",
        )
    return CheckResult("database", "ok", f"{backend}, migrations current")


async def check_yclients(settings: Settings) -> CheckResult:
    """Reaches the API, the token is accepted, and records can be read (per salon)."""
    client = YClientsClient.from_settings(settings)
    if client is None:
        return CheckResult("yclients", "off", "YCLIENTS_PARTNER_TOKEN not set")
    try:
        await db.init_orm(settings.db_url)
        try:
            salons = (
                await Company.filter(integration_status=IntegrationStatus.ACTIVE)
                .order_by("id")
                .limit(3)
            )
        finally:
            await db.close_orm()
    except Exception:
        salons = []
    if not salons:
        await client.aclose()
        return CheckResult(
            "yclients",
            "ok",
            "configured; no active salon yet to try the token on",
            "",
        )
    try:
        for company in salons:
            api = client.with_user_token(company.yclients_user_token)
            await api.company(company.yclients_id)
            async for _page in api.iter_record_pages(company.yclients_id, count=1):
                break
    except YClientsError as exc:
        return CheckResult(
            "yclients",
            "fail",
            f"salon {company.yclients_id}: {exc.api_message or exc.status}",
            str(exc),
        )
    finally:
        await client.aclose()
    return CheckResult(
        "yclients", "ok", f"token accepted, records readable for {len(salons)} salon(s)"
    )


async def check_whatsapp(settings: Settings) -> CheckResult:
    """The WAHA gateway answers and accepts our API key."""
    try:
        gateway = WahaGateway.from_settings(settings, timeout=5.0, retries=0)
    except GatewayNotConfigured as exc:
        return CheckResult(
            "whatsapp", "fail", "WHATSAPP_GATEWAY_URL is set but incomplete", str(exc)
        )
    if gateway is None:
        return CheckResult("whatsapp", "off", "WHATSAPP_GATEWAY_URL not set")
    try:
        await gateway.ping()
    except GatewayUnauthorized as exc:
        return CheckResult(
            "whatsapp",
            "fail",
            str(exc),
            "set WHATSAPP_GATEWAY_API_KEY to the WAHA_API_KEY the WAHA container runs with",
        )
    except GatewayUnavailable as exc:
        return CheckResult(
            "whatsapp",
            "fail",
            str(exc),
            "check WHATSAPP_GATEWAY_URL (http://waha:3000 under compose) and that WAHA runs",
        )
    except GatewayError as exc:
        return CheckResult(
            "whatsapp", "fail", str(exc), "check WHATSAPP_GATEWAY_URL points at WAHA"
        )
    finally:
        await gateway.aclose()
    return CheckResult("whatsapp", "ok", f"gateway at {settings.whatsapp_gateway_url} answers")


async def check_telegram(settings: Settings) -> CheckResult:
    """The Bot API at TELEGRAM_API_URL answers and accepts the token (`getMe`)."""
    assert settings.telegram_bot_token is not None
    url = f"{settings.telegram_api_url}/bot{settings.telegram_bot_token.get_secret_value()}/getMe"
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            response = await http.get(url)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return CheckResult(
            "telegram",
            "fail",
            f"{settings.telegram_api_url}: {type(exc).__name__}",
            "check TELEGRAM_API_URL and that this host reaches it",
        )
    if response.status_code == 401:
        return CheckResult(
            "telegram", "fail", "the token is refused", "copy the token again from @BotFather"
        )
    result = body.get("result") if isinstance(body, dict) and body.get("ok") else None
    if not isinstance(result, dict):
        return CheckResult(
            "telegram",
            "fail",
            f"getMe answered {response.status_code}",
            "check TELEGRAM_API_URL points at a Bot API server",
        )
    return CheckResult(
        "telegram", "ok", f"@{result.get('username')}, {settings.telegram_mode} mode"
    )


async def run_checks(settings: Settings) -> list[CheckResult]:
    results = [CheckResult("settings", "ok", "read from the environment and .env")]
    results.append(await check_database(settings))
    for part in parts(settings):
        if part.name == "yclients" and part.enabled:
            results.append(await check_yclients(settings))
        elif part.name == "whatsapp" and settings.whatsapp_gateway_url:
            results.append(await check_whatsapp(settings))
        elif part.name == "telegram" and part.enabled:
            results.append(await check_telegram(settings))
        elif not part.enabled:
            results.append(CheckResult(part.name, "off", part.reason))
        else:
            results.append(CheckResult(part.name, "ok", "configured"))
    return results
