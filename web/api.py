"""The salon's own API (Bearer the api key it was given at activation)."""

from __future__ import annotations

import logging

from aiohttp import web

from core import companies
from core.models import Company, IntegrationStatus
from core.notifications import BalanceNotice
from core.sync import sync_company
from core.yclients import YClientsError
from web.edge import bearer_token
from web.keys import NOTIFIER, YCLIENTS

log = logging.getLogger(__name__)


async def _company_from_bearer(request: web.Request) -> Company:
    company = await companies.company_by_api_key(bearer_token(request))
    if company is None:
        raise web.HTTPUnauthorized(
            text='{"error": "a valid api key is required: Authorization: Bearer <key>"}',
            content_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return company


async def sync_bookings_handler(request: web.Request) -> web.Response:
    """Sync this salon now; `?full=1` re-reads the whole visit-date window."""
    company = await _company_from_bearer(request)
    client = request.app[YCLIENTS]
    if client is None:
        return web.json_response({"error": "YClients is not configured on this server"}, status=503)
    if company.integration_status is not IntegrationStatus.ACTIVE:
        return web.json_response(
            {"error": f"the salon is {company.integration_status}, not active"}, status=409
        )
    full = request.query.get("full", "").lower() in {"1", "true", "yes"}
    try:
        stats = await sync_company(client, company, full=full)
    except YClientsError as exc:
        log.warning("manual sync of company %s failed: %s", company.id, exc)
        return web.json_response({"error": str(exc)}, status=502)
    if stats.changes:
        await request.app[NOTIFIER].notify([BalanceNotice.from_result(c) for c in stats.changes])
    return web.json_response(
        {
            "company": company.yclients_id,
            **stats.summary(),
            "unmatched_records": stats.unmatched_records,
        }
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/yclients/sync-bookings", sync_bookings_handler)
