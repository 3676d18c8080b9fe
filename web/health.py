"""GET /health and GET /marketplace/health."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from core import health
from core.whatsapp import GatewayError
from web.keys import SETTINGS, WHATSAPP

log = logging.getLogger(__name__)

GATEWAY_TIMEOUT = 5.0


async def health_handler(request: web.Request) -> web.Response:
    report = await health.collect(request.app[SETTINGS])
    return web.json_response(report.as_dict(), status=200 if report.ok else 503)


async def marketplace_health_handler(request: web.Request) -> web.Response:
    """The same facts in the shape the marketplace integration reports."""
    settings = request.app[SETTINGS]
    report = await health.collect(settings)
    services = {"database": "ok" if report.ok else "error"}
    for name, part in report.parts.items():
        services[name] = "ok" if part["enabled"] else "disabled"
    gateway = request.app.get(WHATSAPP)
    if gateway is not None:
        try:
            await asyncio.wait_for(gateway.ping(), GATEWAY_TIMEOUT)
        except (GatewayError, TimeoutError) as exc:
            log.warning("marketplace health: the WhatsApp gateway does not answer: %s", exc)
            services["whatsapp"] = "error"
    # A gateway outage degrades the service but is no reason to restart this process.
    degraded = services.get("whatsapp") == "error"
    body = {
        "status": "error" if not report.ok else "degraded" if degraded else "ok",
        "environment": settings.environment,
        "services": services,
    }
    return web.json_response(body, status=200 if report.ok else 503)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", health_handler)
    app.router.add_get("/marketplace/health", marketplace_health_handler)
