"""The salon's integration status and its audit log.

Every status change is a compare-and-set `UPDATE … WHERE integration_status = <expected>`,
so handlers are idempotent by state (not by a hash of the event body) and a stale read can
never demote an active salon. `application_status` reads the app's install status as YClients
reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.models import Company, IntegrationStatus, MarketplaceEvent

PENDING = "pending"
ACTIVE = "active"
NOT_INSTALLED = "not_installed"


def application_status(data: Mapping[str, Any]) -> str | None:
    """The app's status in a salon from `GET /marketplace/salon/{id}/application/{app}`:
    `pending`, `active`, `uninstalled` (lower case), None when the answer says none.

    The documented answer keeps it in `connection_status.status`; an older top-level
    `status` (a string or a numeric 1) and `active`/`is_active` flags are read too.
    """
    connection = data.get("connection_status")
    status = connection.get("status") if isinstance(connection, Mapping) else connection
    if status is None:
        status = data.get("status")
    if isinstance(status, str) and status.strip():
        return status.strip().lower()
    if isinstance(status, int) and not isinstance(status, bool):
        return ACTIVE if status == 1 else str(status)
    if any(data.get(flag) is True for flag in ("active", "is_active")):
        return ACTIVE
    return None


def application_is_active(data: Mapping[str, Any]) -> bool:
    """Whether the install status says the app is active in the salon."""
    return application_status(data) == ACTIVE


async def audit(company_id: int | None, kind: str, **details: Any) -> MarketplaceEvent:
    return await MarketplaceEvent.create(company_id=company_id, kind=kind[:32], details=details)


async def set_status(
    company_id: int, expected: Iterable[IntegrationStatus], new: IntegrationStatus, **values: Any
) -> bool:
    """Compare-and-set of the integration status; True when this call made the change."""
    changed = await Company.filter(id=company_id, integration_status__in=list(expected)).update(
        integration_status=new, **values
    )
    return bool(changed)
