"""bot.companies.unavailable_reply: what a client of a salon that left or is paused reads."""

from __future__ import annotations

from bot.companies import unavailable_reply
from core.models import IntegrationStatus


def test_replies() -> None:
    assert unavailable_reply(IntegrationStatus.ACTIVE, "ru") is None
    assert "no longer" in (unavailable_reply(IntegrationStatus.UNINSTALLED, "en") or "")
    assert "приостановлен" in (unavailable_reply(IntegrationStatus.FROZEN, "ru") or "")
