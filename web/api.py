"""The salon's own API (Bearer the api key it was given at activation)."""

from __future__ import annotations

import logging

from aiohttp import web

from core import companies
from core.models import Company, IntegrationStatus
from web.edge import bearer_token
from web.keys import SYNC_JOBS, YCLIENTS
from web.sync_jobs import stored_answer

log = logging.getLogger(__name__)

SYNC_PATH = "/api/v1/yclients/sync-bookings"


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
    """Start syncing this salon (`?full=1`: the whole visit-date window) and answer 202 at once
    with the job's state; while the salon's sync runs, a second request reports that one."""
    company = await _company_from_bearer(request)
    client = request.app[YCLIENTS]
    if client is None:
        return web.json_response({"error": "YClients is not configured on this server"}, status=503)
    if company.integration_status is not IntegrationStatus.ACTIVE:
        return web.json_response(
            {"error": f"the salon is {company.integration_status}, not active"}, status=409
        )
    full = request.query.get("full", "").lower() in {"1", "true", "yes"}
    job, started = await request.app[SYNC_JOBS].start(client, company, full=full)
    answer = job.answer()
    if job.status == "elsewhere":
        # Another replica holds the salon's sync: report that one.
        answer = await stored_answer(company) or {"status": "running"}
    answer["joined"] = not started or job.status == "elsewhere"
    return web.json_response(answer, status=202, headers={"Location": SYNC_PATH})


async def sync_status_handler(request: web.Request) -> web.Response:
    """The state of this salon's latest sync: `running` (with progress), `done` (the stats),
    or `failed` (a sentence saying why)."""
    company = await _company_from_bearer(request)
    job = request.app[SYNC_JOBS].get(company.id)
    answer = job.answer() if job is not None and job.status != "elsewhere" else None
    if answer is None:
        answer = await stored_answer(company)
    if answer is None:
        return web.json_response(
            {"status": "none", "error": "this salon has not been synced yet; POST to start"},
            status=404,
        )
    return web.json_response(answer)


def setup_routes(app: web.Application) -> None:
    app.router.add_post(SYNC_PATH, sync_bookings_handler)
    app.router.add_get(SYNC_PATH, sync_status_handler)
