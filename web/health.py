"""GET /health and GET /marketplace/health."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from core import health
from core.whatsapp import GatewayError
from web.keys import PART_STATES, SETTINGS, WHATSAPP
from web.whatsapp_channel import PART as WHATSAPP_PART
from web.whatsapp_channel import gateway_failing

log = logging.getLogger(__name__)

GATEWAY_TIMEOUT = 5.0
REDIS_PART = "redis"


async def health_handler(request: web.Request) -> web.Response:
    report = await health.collect(request.app[SETTINGS], request.app[PART_STATES])
    return web.json_response(report.as_dict(), status=200 if report.ok else 503)


async def marketplace_health_handler(request: web.Request) -> web.Response:
    """The same facts per service; the WhatsApp gateway and Redis are asked now (the answers
    also go to /health's state), the other parts as their channels last found them."""
    app = request.app
    settings = app[SETTINGS]
    states = app[PART_STATES]
    gateway = app.get(WHATSAPP)
    if gateway is not None:
        try:
            await asyncio.wait_for(gateway.ping(), GATEWAY_TIMEOUT)
        except (GatewayError, TimeoutError) as exc:
            gateway_failing(states, exc)
        else:
            states.ok(WHATSAPP_PART)
    if settings.redis_url:
        # Asked now too: a Redis that does not answer PING is not "ok" because it is configured.
        problem = await health.redis_problem(settings.redis_url, wait=GATEWAY_TIMEOUT)
        if problem is None:
            states.ok(REDIS_PART)
        else:
            states.failing(
                REDIS_PART, "the bot's conversation store cannot be reached", problem.detail
            )
    report = await health.collect(settings, states)
    database: dict[str, Any] = {"state": "ok" if report.ok else "failing"}
    if not report.ok:
        database["reason"] = (
            "unapplied migrations" if report.database_ok else "the database cannot be reached"
        )
        database["error"] = report.database_error or ", ".join(report.pending_migrations)
    services = {"database": database, **report.parts}
    # A failing part degrades the service but is no reason to restart this process.
    body = {
        "status": "error" if not report.ok else "degraded" if report.degraded else "ok",
        "environment": settings.environment,
        "services": services,
    }
    return web.json_response(body, status=200 if report.ok else 503)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", health_handler)
    app.router.add_get("/marketplace/health", marketplace_health_handler)
