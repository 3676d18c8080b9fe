"""The salon's WhatsApp link as we know it: its gateway session, and whether (and which
number) it is linked.

A status read from the gateway and a webhook may race; `whatsapp_*` audit events carry the
moment they describe (`at_ms`), and an older observation never overwrites a newer one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.marketplace.status import audit
from core.models import Company, MarketplaceEvent
from core.whatsapp.errors import SessionNotFound
from core.whatsapp.gateway import SessionInfo, SessionStatus
from core.whatsapp.ids import phone_from_chat_id
from core.whatsapp.webhook import WEBHOOK_PATH

if TYPE_CHECKING:
    from core.whatsapp.gateway import WhatsAppGateway

log = logging.getLogger(__name__)

# The inbox source of the gateway's webhook events.
WHATSAPP = "whatsapp"

_CONNECTION_EVENTS = ("whatsapp_connected", "whatsapp_disconnected")
# States that mean "not linked"; STARTING is a step on the way to either, so it changes nothing.
_DISCONNECTED = frozenset({SessionStatus.SCAN_QR_CODE, SessionStatus.FAILED, SessionStatus.STOPPED})


def session_name(company: Company) -> str:
    return company.whatsapp_session or f"salon-{company.yclients_id}"


def whatsapp_webhook_url(base_url: str) -> str:
    return base_url + WEBHOOK_PATH


async def ensure_whatsapp(
    company: Company, gateway: WhatsAppGateway, base_url: str, *, restart_failed: bool
) -> SessionInfo:
    """The salon's gateway session, created if missing; a FAILED (or stopped) one restarted
    only when the owner asked for a new code, since WhatsApp caps link attempts."""
    name = session_name(company)
    if company.whatsapp_session is None:
        await Company.filter(id=company.id, whatsapp_session__isnull=True).update(
            whatsapp_session=name
        )
        company.whatsapp_session = name
    info = await gateway.ensure_session(
        name,
        whatsapp_webhook_url(base_url),
        {"salonbot.company": str(company.id), "salonbot.yclients_id": str(company.yclients_id)},
    )
    if restart_failed and info.status in (SessionStatus.FAILED, SessionStatus.STOPPED):
        info = await gateway.restart(name)
    await record_whatsapp_state(company, info.status, info.phone, at_ms=_now_ms())
    return info


async def live_status(company: Company, gateway: WhatsAppGateway) -> SessionInfo | None:
    """The session as the gateway sees it now (and recorded), or None when there is none."""
    if company.whatsapp_session is None:
        return None
    try:
        info = await gateway.status(company.whatsapp_session)
    except SessionNotFound:
        return None
    await record_whatsapp_state(company, info.status, info.phone, at_ms=_now_ms())
    return info


async def record_whatsapp_state(
    company: Company, status: str, phone: str | None, *, at_ms: int
) -> bool:
    """Keep `whatsapp_connected`/`whatsapp_phone` current; True when something changed.

    Only changes are audited (`whatsapp_connected`/`whatsapp_disconnected`), each with the
    moment it describes, so a late webhook never undoes a newer observation.
    """
    if status == SessionStatus.WORKING:
        connected = True
    elif status in _DISCONNECTED:
        connected = False
    else:
        return False
    last = (
        await MarketplaceEvent.filter(company_id=company.id, kind__in=_CONNECTION_EVENTS)
        .order_by("-id")
        .first()
    )
    if last is not None and int(last.details.get("at_ms") or 0) > at_ms:
        return False
    fresh = await Company.get(id=company.id)
    # A WORKING report without `me` says nothing about the number: keep the one we know.
    same_phone = not connected or phone is None or fresh.whatsapp_phone == phone
    if fresh.whatsapp_connected == connected and same_phone:
        company.whatsapp_connected, company.whatsapp_phone = connected, fresh.whatsapp_phone
        return False
    values: dict[str, Any] = {"whatsapp_connected": connected}
    if connected and phone:
        values["whatsapp_phone"] = phone
    await Company.filter(id=company.id).update(**values)
    company.whatsapp_connected = connected
    if "whatsapp_phone" in values:
        company.whatsapp_phone = phone
    await audit(
        company.id,
        "whatsapp_connected" if connected else "whatsapp_disconnected",
        status=str(status),
        phone=phone if connected else None,
        at_ms=at_ms,
    )
    return True


async def apply_session_status(payload: Mapping[str, Any], company_id: int | None) -> bool:
    """A WAHA `session.status` event (as stored in the inbox) applied to its salon."""
    session = payload.get("session")
    company = await Company.get_or_none(id=company_id) if company_id is not None else None
    if company is None and isinstance(session, str):
        company = await Company.get_or_none(whatsapp_session=session)
    if company is None:
        log.info("WhatsApp status for unknown session %r ignored", session)
        return False
    body = payload.get("payload")
    body = body if isinstance(body, dict) else {}
    me = payload.get("me")
    me = me if isinstance(me, dict) else {}
    status = str(body.get("status") or "")
    timestamp = payload.get("timestamp")
    at_ms = timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else 0
    return await record_whatsapp_state(
        company, status, phone_from_chat_id(me.get("id")), at_ms=at_ms
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
