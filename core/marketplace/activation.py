"""Activation: the owner finishes onboarding; the salon gets its api key, YClients the
activation callback, and the salon becomes `active`.

No database transaction is open across an HTTP call: the api key hash is committed before
the callback, and the outcome is written after it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core import companies
from core.locks import run_exclusive
from core.marketplace.status import application_is_active, application_status, audit, set_status
from core.models import Company, IntegrationStatus, MarketplaceEvent
from core.yclients import AlreadyInstalled, YClientsClient, YClientsError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActivationResult:
    """`outcome`: activated, already_active, callback_failed, not_ready or busy."""

    outcome: str
    status: IntegrationStatus
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("activated", "already_active")


async def activate(
    company_id: int, *, client: YClientsClient, application_id: int, base_url: str
) -> ActivationResult:
    """Finish onboarding: api key, the callback to YClients, then status `active`.

    One activation of a salon at a time (a PostgreSQL advisory lock across replicas); a second
    activation of an active salon changes nothing.
    """
    ran, result = await run_exclusive(
        f"marketplace-activate-{company_id}",
        lambda: _activate(company_id, client, application_id, base_url),
    )
    if not ran or result is None:
        company = await Company.get(id=company_id)
        return ActivationResult("busy", company.integration_status)
    return result


async def _activate(
    company_id: int, client: YClientsClient, application_id: int, base_url: str
) -> ActivationResult:
    company = await Company.get(id=company_id)
    status = company.integration_status
    if status is IntegrationStatus.ACTIVE:
        return ActivationResult("already_active", status)
    if status is not IntegrationStatus.PENDING_WHATSAPP:
        return ActivationResult("not_ready", status, f"the salon is {status.value}")
    if not company.whatsapp_connected:
        return ActivationResult("not_ready", status, "WhatsApp is not linked yet")
    key, digest = companies.new_api_key()
    # Committed before YClients hears of the key: it must never hold a key we cannot check.
    # It stays unconfirmed, beside the keys of earlier attempts whose answer may have been
    # lost, until YClients is known to hold it (below) or a request proves it.
    await companies.add_pending_api_key(company.id, digest)
    hook_url = companies.webhook_url(base_url, company)
    details: dict[str, Any] = {"webhook_url_sent": True}
    try:
        answer = await client.marketplace_callback_redirect(
            company.yclients_id, application_id, key, [hook_url]
        )
        details.update(via="callback", http_status=answer.status, location=answer.location)
        # YClients took this key: it is the salon's; unconfirmed ones from earlier attempts go.
        await companies.adopt_api_key(company.id, digest)
    except AlreadyInstalled as exc:
        failure = await _confirm_installed(company, client, application_id, exc)
        if failure is not None:
            return await _callback_failed(company, failure)
        # YClients keeps the key of an earlier attempt whose answer was lost, not this one:
        # every unconfirmed key keeps working until a request proves one
        # (companies.company_by_api_key).
        details.update(via="already_installed")
    except YClientsError as exc:
        return await _callback_failed(company, exc.api_message or str(exc), exc.status)
    if await set_status(company.id, [IntegrationStatus.PENDING_WHATSAPP], IntegrationStatus.ACTIVE):
        await audit(company.id, "activated", **details)
        log.info("salon %s activated", company.yclients_id)
        return ActivationResult("activated", IntegrationStatus.ACTIVE)
    # Uninstalled or frozen while the callback was under way: that event wins.
    current = (await Company.get(id=company.id)).integration_status
    return ActivationResult(
        "already_active" if current is IntegrationStatus.ACTIVE else "not_ready", current
    )


async def _confirm_installed(
    company: Company, client: YClientsClient, application_id: int, exc: AlreadyInstalled
) -> str | None:
    """None when YClients confirms the app is active in the salon; the reason otherwise."""
    try:
        data = await client.salon_application(company.yclients_id, application_id)
    except YClientsError as read_error:
        return read_error.api_message or str(read_error)
    if application_is_active(data):
        return None
    return exc.api_message or f"the application is {application_status(data)} in YClients"


async def _callback_failed(
    company: Company, message: str, http_status: int | None = None
) -> ActivationResult:
    await audit(company.id, "callback_failed", message=message, http_status=http_status)
    log.warning("salon %s: activation callback failed: %s", company.yclients_id, message)
    current = (await Company.get(id=company.id)).integration_status
    return ActivationResult("callback_failed", current, message)


async def last_callback_failure(company: Company) -> str | None:
    """YClients' message when the latest activation attempt failed (for the page)."""
    last = (
        await MarketplaceEvent.filter(
            company_id=company.id, kind__in=("callback_failed", "activated", "registration_started")
        )
        .order_by("-id")
        .first()
    )
    if last is None or last.kind != "callback_failed":
        return None
    return str(last.details.get("message") or "")
