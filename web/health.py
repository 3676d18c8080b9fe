"""GET /health and GET /marketplace/health."""

from __future__ import annotations

from aiohttp import web

from core import health
from web.keys import SETTINGS


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
    body = {
        "status": "ok" if report.ok else "error",
        "environment": settings.environment,
        "services": services,
    }
    return web.json_response(body, status=200 if report.ok else 503)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", health_handler)
    app.router.add_get("/marketplace/health", marketplace_health_handler)
