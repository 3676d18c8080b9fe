"""Lifecycle webhooks: YClients tells us a salon uninstalled the app or is frozen."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core import companies
from core.marketplace.signature import as_int
from core.marketplace.status import audit, set_status
from core.models import Company, InboxEvent, IntegrationStatus
from core.whatsapp.errors import GatewayError, SessionNotFound

if TYPE_CHECKING:
    from core.ledger import LedgerResult
    from core.whatsapp.gateway import WhatsAppGateway

log = logging.getLogger(__name__)

# The inbox source of lifecycle webhooks.
MARKETPLACE = "marketplace"


def partner_token_matches(given: object, ours: str | None) -> bool:
    if not ours or not isinstance(given, str) or not given.isascii():
        # Compare anyway, so a refusal costs the same whatever was wrong.
        hmac.compare_digest(b"-", b"+")
        return False
    return hmac.compare_digest(given.encode(), ours.encode())


def lifecycle_for_storage(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The event as kept in the inbox: our partner token is never written down."""
    return {k: ("***" if k == "partner_token" else v) for k, v in payload.items()}


@dataclass(slots=True)
class LifecycleOutcome:
    kind: str
    changed: bool = False
    details: dict[str, Any] = field(default_factory=dict)


async def handle_lifecycle(
    payload: Mapping[str, Any],
    *,
    gateway: WhatsAppGateway | None,
    application_id: int | None,
) -> LifecycleOutcome:
    """Apply `uninstall`/`freeze`, idempotent by state; anything else is audited only."""
    event = str(payload.get("event") or "")
    salon_id = as_int(payload.get("salon_id"))
    app_id = as_int(payload.get("application_id"))
    company = await Company.get_or_none(yclients_id=salon_id) if salon_id else None
    company_id = company.id if company else None
    if application_id and app_id is not None and app_id != application_id:
        # The partner token is shared by a partner's applications: not ours to act on.
        await audit(company_id, "other_application", event=event, application_id=app_id)
        return LifecycleOutcome("other_application")
    if company is None:
        await audit(None, event or "unknown", salon_id=salon_id, known_salon=False)
        return LifecycleOutcome(event or "unknown")
    if event == "uninstall":
        outcome = await _uninstall(company, gateway)
    elif event == "freeze":
        changed = await set_status(company.id, [IntegrationStatus.ACTIVE], IntegrationStatus.FROZEN)
        outcome = LifecycleOutcome("freeze", changed)
    else:
        outcome = LifecycleOutcome("unknown", details={"event": event[:64]})
    await audit(company.id, outcome.kind, changed=outcome.changed, **outcome.details)
    return outcome


async def _uninstall(company: Company, gateway: WhatsAppGateway | None) -> LifecycleOutcome:
    changed = await set_status(
        company.id,
        [s for s in IntegrationStatus if s is not IntegrationStatus.UNINSTALLED],
        IntegrationStatus.UNINSTALLED,
        api_key_hash=None,
        whatsapp_connected=False,
    )
    if changed:
        await companies.drop_api_keys(company.id)
    details: dict[str, Any] = {}
    current = await Company.get(id=company.id)
    # By state, not by event: a repeated uninstall logs out again (harmless), and one after a
    # reinstall is a real uninstall.
    if current.integration_status is IntegrationStatus.UNINSTALLED and current.whatsapp_session:
        details["whatsapp_logout"] = await _logout(current.whatsapp_session, gateway)
    return LifecycleOutcome("uninstall", changed, details)


async def _logout(session: str, gateway: WhatsAppGateway | None) -> str:
    if gateway is None:
        return "skipped: no gateway configured"
    try:
        await gateway.logout(session)
        await gateway.stop(session)
    except SessionNotFound:
        return "no session"
    except GatewayError as exc:
        # The salon is uninstalled either way; an unlinked phone is tidiness, not a must.
        log.warning("WhatsApp logout of %s failed: %s", session, exc)
        return f"failed: {exc}"
    return "done"


async def handle_marketplace_event(
    event: InboxEvent, *, gateway: WhatsAppGateway | None, application_id: int | None
) -> list[LedgerResult]:
    """The inbox handler for source `marketplace`."""
    await handle_lifecycle(event.payload, gateway=gateway, application_id=application_id)
    return []
