"""`salonbot check`: a plain verdict per part, and the fix for a failure."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from core import db, health
from core.max import MaxClient, MaxError, MaxUnauthorized
from core.models import Company, IntegrationStatus
from core.parts import half_configured, parts
from core.settings import Settings
from core.whatsapp import (
    GatewayError,
    GatewayNotConfigured,
    GatewayUnauthorized,
    GatewayUnavailable,
    WahaGateway,
)
from core.yclients import (
    Forbidden,
    NotFound,
    Unauthorized,
    YClientsClient,
    YClientsError,
)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str  # "ok", "off", "warn" (not tried, says why) or "fail"
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


# Salons whose user token `check` tries; each costs two calls of YClients' 5-a-second budget.
CHECK_SALONS = 20


def _yclients_failure(name: str, what: str, exc: YClientsError) -> CheckResult:
    answer = f"HTTP {exc.status}" if exc.status is not None else "no answer"
    if exc.api_message:
        answer += f", {exc.api_message}"
    return CheckResult(name, "fail", f"{what} ({answer})", exc.advice)


async def _active_salons(settings: Settings) -> tuple[list[Company], int]:
    try:
        await db.init_orm(settings.db_url)
        try:
            query = Company.filter(integration_status=IntegrationStatus.ACTIVE)
            return list(await query.order_by("id").limit(CHECK_SALONS)), await query.count()
        finally:
            await db.close_orm()
    except Exception:  # the database line of `check` says what is wrong with it
        return [], 0


async def check_yclients(settings: Settings) -> list[CheckResult]:
    """The partner token is accepted (even before any salon exists, when YCLIENTS_APP_ID is
    set), and each active salon's user token may read its records."""
    if settings.yclients_partner_token is None:
        return [CheckResult("yclients", "off", "YCLIENTS_PARTNER_TOKEN not set")]
    user = settings.yclients_user_token
    client = YClientsClient(
        settings.yclients_api_url,
        settings.yclients_partner_token.get_secret_value(),
        user.get_secret_value() if user is not None else None,
        rate_limit=settings.yclients_rate_limit,
        timeout=5.0,
        max_retries=0,
    )
    async with client:
        salons, total = await _active_salons(settings)
        partner_ok = False
        if settings.yclients_app_id is not None:
            try:
                await client.application_salons(settings.yclients_app_id, count=1)
            except Unauthorized as exc:
                return [_partner_refused(exc)]
            except (NotFound, Forbidden) as exc:
                return [
                    CheckResult(
                        "yclients",
                        "fail",
                        f"YClients knows no application {settings.yclients_app_id} of this "
                        f"partner token (HTTP {exc.status})",
                        "set YCLIENTS_APP_ID to the application id from the YClients developer "
                        "cabinet, and YCLIENTS_PARTNER_TOKEN to that application's partner token",
                    )
                ]
            except YClientsError as exc:
                return [_yclients_failure("yclients", "the partner token could not be tried", exc)]
            partner_ok = True
        if not salons:
            if partner_ok:
                return [
                    CheckResult(
                        "yclients",
                        "ok",
                        f"partner token accepted (application {settings.yclients_app_id}); "
                        "no active salon yet",
                    )
                ]
            return [
                CheckResult(
                    "yclients",
                    "warn",
                    "no YCLIENTS_APP_ID and no active salon: the partner token was not tried",
                    "set YCLIENTS_APP_ID (the application id from the YClients developer "
                    "cabinet), or add a salon with `salonbot company add`",
                )
            ]
        failures: list[CheckResult] = []
        for company in salons:
            try:
                failure = await _check_salon(client, settings, company)
            except Unauthorized as exc:
                return [_partner_refused(exc)]
            if failure is not None:
                failures.append(failure)
    readable = len(salons) - len(failures)
    results = failures
    if readable:
        shown = f" (the first {CHECK_SALONS} of {total} tried)" if total > len(salons) else ""
        results.insert(
            0,
            CheckResult(
                "yclients", "ok", f"token accepted, records readable for {readable} salon(s){shown}"
            ),
        )
    return results


def _partner_refused(exc: YClientsError) -> CheckResult:
    return CheckResult(
        "yclients",
        "fail",
        f"YClients refused YCLIENTS_PARTNER_TOKEN (HTTP {exc.status})",
        "copy the partner token again from the YClients developer cabinet "
        "(no spaces around it; not a user token)",
    )


async def _check_salon(
    client: YClientsClient, settings: Settings, company: Company
) -> CheckResult | None:
    """None when the salon can be read and its records too; Unauthorized from the salon read
    (a partner-token call) is left to the caller: it concerns every salon."""
    salon = company.yclients_id
    api = client.with_user_token(company.yclients_user_token)
    try:
        await api.company(salon)
    except Unauthorized:
        raise
    except YClientsError as exc:
        return _yclients_failure("yclients", f"salon {salon} could not be read", exc)
    own = bool(company.yclients_user_token)
    renew = (
        f"run `salonbot company add --yclients-id {salon} --user-token TOKEN` with a current one"
        if own
        else "set YCLIENTS_USER_TOKEN to a current one"
    )
    try:
        async for _page in api.iter_record_pages(salon, count=1):
            break
    except Unauthorized as exc:
        return CheckResult(
            "yclients",
            "fail",
            f"salon {salon}: YClients refused its user token (HTTP {exc.status})",
            f"a user token changes when that user's password does: {renew}",
        )
    except Forbidden as exc:
        if not own and settings.yclients_user_token is None:
            return CheckResult(
                "yclients",
                "fail",
                f"salon {salon} has no user token, and YClients wants one to read records "
                f"(HTTP {exc.status})",
                f"run `salonbot company add --yclients-id {salon} --user-token TOKEN` with the "
                "token of a YClients user who may see records, or set YCLIENTS_USER_TOKEN",
            )
        return CheckResult(
            "yclients",
            "fail",
            f"salon {salon}: its user token may not read records (HTTP {exc.status})",
            "give that YClients user the right to see records (Settings → Users → access "
            "rights), or use another user's token",
        )
    except YClientsError as exc:
        return _yclients_failure("yclients", f"salon {salon}: records could not be read", exc)
    return None


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
    if settings.telegram_bot_token is None:
        raise RuntimeError("check_telegram without TELEGRAM_BOT_TOKEN")
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


async def check_max(settings: Settings) -> CheckResult:
    """The MAX Bot API at MAX_API_URL answers and accepts the token (`GET /me`), over the
    client's own TLS trust."""
    client = MaxClient.from_settings(settings)
    if client is None:
        raise RuntimeError("check_max without MAX_BOT_TOKEN")
    try:
        me = await client.me()
    except MaxUnauthorized:
        return CheckResult(
            "max", "fail", "the token is refused", "copy the token again from business.max.ru"
        )
    except MaxError as exc:
        return CheckResult(
            "max",
            "fail",
            f"{settings.max_api_url}: {exc}",
            "check MAX_API_URL and that this host reaches it",
        )
    finally:
        await client.aclose()
    return CheckResult("max", "ok", f"@{me.get('username')}, {settings.max_mode} mode")


async def check_redis(settings: Settings) -> CheckResult:
    """A real PING: an unreachable or malformed REDIS_URL fails."""
    if settings.redis_url is None:
        raise RuntimeError("check_redis without REDIS_URL")
    problem = await health.redis_problem(settings.redis_url)
    if problem is not None:
        return CheckResult("redis", "fail", problem.detail, problem.fix)
    return CheckResult("redis", "ok", "PING answered")


async def run_checks(settings: Settings) -> list[CheckResult]:
    results = [CheckResult("settings", "ok", "read from the environment and .env")]
    results.append(await check_database(settings))
    problems = half_configured(settings)
    for part in parts(settings):
        own = [p for p in problems if p.part == part.name]
        if own:
            results.extend(CheckResult(part.name, "fail", p.detail, p.fix) for p in own)
        elif not part.enabled:
            results.append(CheckResult(part.name, "off", part.reason))
        elif part.name == "yclients":
            results.extend(await check_yclients(settings))
        elif part.name == "whatsapp":
            results.append(await check_whatsapp(settings))
        elif part.name == "telegram":
            results.append(await check_telegram(settings))
        elif part.name == "redis":
            results.append(await check_redis(settings))
        elif part.name == "max":
            results.append(await check_max(settings))
        else:
            results.append(CheckResult(part.name, "ok", "configured"))
    return results
