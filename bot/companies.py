"""Salons as the bot reads them on every update, kept for a few seconds.

A salon's row changes rarely (a title, the synced catalogue, a freeze) while every update needs
it: reading it each time was a fifth of an update's cost. An entry lives `ttl` seconds, so a
change is seen within that. `SessionCompanies` does the same for the WhatsApp webhook's
question "whose gateway session is this". `unavailable_reply` is what a client of a salon
that left or is paused is told instead of the menu.
"""

from __future__ import annotations

import time

from core.i18n import _, gettext
from core.models import Company, IntegrationStatus


class CompanyCache:
    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._entries: dict[int, tuple[float, Company]] = {}

    async def get(self, company_id: int) -> Company | None:
        now = time.monotonic()
        hit = self._entries.get(company_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        company = await Company.get_or_none(id=company_id)
        if company is None:
            self._entries.pop(company_id, None)
        else:
            self._entries[company_id] = (now + self.ttl, company)
        return company


class SessionCompanies:
    """Which salon a gateway session belongs to, remembered for a while: every event asks, and
    a salon's session name never changes (`salon-<yclients id>`). Unknown sessions are asked
    again each time (the salon may be registering right now)."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[float, int]] = {}

    async def company_id(self, session: str) -> int | None:
        now = time.monotonic()
        hit = self._known.get(session)
        if hit is not None and hit[0] > now:
            return hit[1]
        company = await Company.get_or_none(whatsapp_session=session)
        if company is None:
            self._known.pop(session, None)
            return None
        self._known[session] = (now + self.ttl, company.id)
        return company.id


_UNINSTALLED_REPLY = _(
    "This salon no longer uses this bot. Please contact the salon directly. Thank you for "
    "being with us!"
)
_FROZEN_REPLY = _(
    "The salon's bot is paused for now. Please contact the salon directly or try again later."
)


def unavailable_reply(status: IntegrationStatus, locale: str) -> str | None:
    """What the bot answers a client of a salon that left or is paused; None when it works."""
    if status is IntegrationStatus.UNINSTALLED:
        return gettext(locale, _UNINSTALLED_REPLY)
    if status is IntegrationStatus.FROZEN:
        return gettext(locale, _FROZEN_REPLY)
    return None
