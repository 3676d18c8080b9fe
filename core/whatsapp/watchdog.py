"""The WhatsApp watchdog: each active salon's gateway session, checked every few minutes.

A `FAILED` or `STOPPED` session is restarted, at most `RESTART_CAP` times in `RESTART_WINDOW`
(kept on the salon's row, so the cap holds across replicas and restarts): WhatsApp refuses new
device links for hours after too many attempts, so looping would only make it worse. The
salon's admins are told once per outage (`Company.whatsapp_alerted_at`) when a restart did not
bring the session back, when the restarts are used up, or when the phone was unlinked (the
session waits for a QR, or is gone from the gateway): then only the owner can help, by linking
again on the onboarding page. When the session works again they are told that too.

The job takes plain values and returns plain data (`WatchdogReport`); web/ schedules it and
delivers the alerts, worded by bot.alerts (core/ knows no chat).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from core.marketplace.status import audit
from core.models import Company, IntegrationStatus
from core.whatsapp.errors import (
    GatewayError,
    GatewayUnauthorized,
    GatewayUnavailable,
    SessionNotFound,
)
from core.whatsapp.gateway import SessionStatus
from core.whatsapp.link import record_whatsapp_state

if TYPE_CHECKING:
    from core.whatsapp.gateway import WhatsAppGateway

log = logging.getLogger(__name__)

RESTART_CAP = 3
RESTART_WINDOW = timedelta(hours=6)
# A session the gateway no longer has: as good as unlinked (only a new link brings it back).
MISSING = "MISSING"


class Trouble(StrEnum):
    # Restarted, and the session is still down.
    DOWN = "down"
    # Down, and no restarts are left in the window: waiting, not looping.
    CAPPED = "capped"
    # The phone unlinked the device (or the gateway lost the session): the owner must link again.
    UNLINKED = "unlinked"
    # Works again after an alert.
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Alert:
    company_id: int
    trouble: Trouble
    status: str


@dataclass(slots=True)
class WatchdogReport:
    checked: int = 0
    restarted: list[int] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    # Set when the gateway itself could not be asked (no salon is to blame for that).
    gateway_error: str | None = None


async def check_sessions(gateway: WhatsAppGateway, *, now: datetime) -> WatchdogReport:
    """One round over every active salon with a WhatsApp session."""
    report = WatchdogReport()
    companies = await Company.filter(
        integration_status=IntegrationStatus.ACTIVE, whatsapp_session__isnull=False
    ).order_by("id")
    for company in companies:
        try:
            await _check(company, gateway, now, report)
        except (GatewayUnavailable, GatewayUnauthorized) as exc:
            # The gateway is down or refuses us: /health says so; no salon is restarted blind.
            report.gateway_error = str(exc)
            log.warning("WhatsApp watchdog: the gateway cannot be asked: %s", exc)
            break
        except GatewayError as exc:
            log.warning("WhatsApp watchdog: salon %s: %s", company.yclients_id, exc)
        report.checked += 1
    return report


async def _check(
    company: Company, gateway: WhatsAppGateway, now: datetime, report: WatchdogReport
) -> None:
    name = company.whatsapp_session
    if name is None:
        raise RuntimeError("the watchdog on a salon without a WhatsApp session")
    at_ms = int(now.timestamp() * 1000)
    try:
        info = await gateway.status(name)
        status, phone = info.status, info.phone
    except SessionNotFound:
        status, phone = MISSING, None
    await record_whatsapp_state(
        company, SessionStatus.STOPPED if status == MISSING else status, phone, at_ms=at_ms
    )
    since = (now - RESTART_WINDOW).timestamp()
    recent = [t for t in company.whatsapp_restarts or [] if t > since]
    trouble: Trouble | None = None
    if status == SessionStatus.WORKING:
        if company.whatsapp_alerted_at is not None:
            await _set(company, whatsapp_alerted_at=None, whatsapp_restarts=recent)
            report.alerts.append(Alert(company.id, Trouble.RECOVERED, status))
            await audit(company.id, "whatsapp_recovered", status=status)
        return
    if status in (SessionStatus.FAILED, SessionStatus.STOPPED):
        if len(recent) >= RESTART_CAP:
            trouble = Trouble.CAPPED
        else:
            # Counted before the call: a restart whose answer is lost may still have happened.
            recent.append(now.timestamp())
            await _set(company, whatsapp_restarts=recent)
            log.info("WhatsApp watchdog: salon %s is %s; restarting", company.yclients_id, status)
            report.restarted.append(company.id)
            await audit(company.id, "whatsapp_restarted", status=status, attempt=len(recent))
            await gateway.restart(name)
            if len(recent) < 2:
                return
            # An earlier restart did not keep it up.
            trouble = Trouble.DOWN
    elif status in (SessionStatus.SCAN_QR_CODE, MISSING):
        trouble = Trouble.UNLINKED
    if trouble is None or company.whatsapp_alerted_at is not None:
        # Starting (wait for the next look), or the admins already know of this outage.
        return
    await _set(company, whatsapp_alerted_at=now)
    report.alerts.append(Alert(company.id, trouble, status))
    await audit(company.id, "whatsapp_alert", trouble=trouble.value, status=status)
    log.warning(
        "WhatsApp watchdog: salon %s is %s (%s); telling its admins",
        company.yclients_id,
        status,
        trouble.value,
    )


async def _set(company: Company, **values: object) -> None:
    await Company.filter(id=company.id).update(**values)
    for name, value in values.items():
        setattr(company, name, value)
