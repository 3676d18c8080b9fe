"""core.whatsapp.watchdog against a scripted gateway: what it restarts, when it alerts, and the cap
over time (the restarts through the real app and WAHA emulator are in tests/web)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from bot.alerts import alert_text
from core.models import Company, IntegrationStatus, MarketplaceEvent
from core.whatsapp import GatewayUnavailable, SessionInfo, SessionNotFound, watchdog
from core.whatsapp.watchdog import RESTART_CAP, RESTART_WINDOW, Trouble, check_sessions

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class ScriptedGateway:
    def __init__(self, status: str | Exception) -> None:
        self.status_now = status
        self.restarts: list[str] = []

    async def status(self, name: str) -> SessionInfo:
        if isinstance(self.status_now, Exception):
            raise self.status_now
        return SessionInfo(name=name, status=self.status_now)

    async def restart(self, name: str) -> SessionInfo:
        self.restarts.append(name)
        return SessionInfo(name=name, status="STARTING")


async def salon(yclients_id: int = 1, **values: object) -> Company:
    defaults: dict[str, object] = {
        "integration_status": IntegrationStatus.ACTIVE,
        "whatsapp_session": f"salon-{yclients_id}",
        "whatsapp_connected": True,
    }
    return await Company.create(
        yclients_id=yclients_id, hook_token=secrets.token_urlsafe(12), **{**defaults, **values}
    )


async def test_only_active_salons_with_a_session_are_checked(orm: str) -> None:
    await salon(1)
    await salon(2, integration_status=IntegrationStatus.FROZEN)
    await Company.create(yclients_id=3, hook_token="h3", integration_status="active")
    gateway = ScriptedGateway("FAILED")
    report = await check_sessions(gateway, now=NOW)  # type: ignore[arg-type]
    assert report.checked == 1 and gateway.restarts == ["salon-1"]


async def test_restarts_are_capped_per_window_and_the_cap_frees_up(orm: str) -> None:
    company = await salon()
    gateway = ScriptedGateway("FAILED")
    alerts = []
    for tick in range(RESTART_CAP + 2):
        report = await check_sessions(gateway, now=NOW + timedelta(minutes=5 * tick))  # type: ignore[arg-type]
        alerts += report.alerts
    assert len(gateway.restarts) == RESTART_CAP
    # Told once for the whole outage (a restart that did not help), not every tick.
    assert [a.trouble for a in alerts] == [Trouble.DOWN]
    assert not (await Company.get(id=company.id)).whatsapp_connected
    later = NOW + RESTART_WINDOW + timedelta(minutes=30)
    await check_sessions(gateway, now=later)  # type: ignore[arg-type]
    assert len(gateway.restarts) == RESTART_CAP + 1


async def test_an_unlinked_or_missing_session_is_not_restarted_and_alerts_once(orm: str) -> None:
    await salon(1)
    await salon(2)
    gateway = ScriptedGateway("SCAN_QR_CODE")
    report = await check_sessions(gateway, now=NOW)  # type: ignore[arg-type]
    assert [a.trouble for a in report.alerts] == [Trouble.UNLINKED, Trouble.UNLINKED]
    gateway.status_now = SessionNotFound("gone")
    report = await check_sessions(gateway, now=NOW + timedelta(minutes=5))  # type: ignore[arg-type]
    assert report.alerts == [] and gateway.restarts == []
    assert await MarketplaceEvent.filter(kind="whatsapp_alert").count() == 2
    gateway.status_now = "WORKING"
    report = await check_sessions(gateway, now=NOW + timedelta(minutes=10))  # type: ignore[arg-type]
    assert [a.trouble for a in report.alerts] == [Trouble.RECOVERED] * 2
    assert all(c.whatsapp_alerted_at is None for c in await Company.all())


async def test_a_gateway_that_cannot_be_asked_restarts_nothing(orm: str) -> None:
    await salon()
    gateway = ScriptedGateway(GatewayUnavailable("GET /api/sessions/salon-1: no answer"))
    report = await check_sessions(gateway, now=NOW)  # type: ignore[arg-type]
    assert report.gateway_error and report.checked == 0 and gateway.restarts == []
    gateway.status_now = "STARTING"
    report = await check_sessions(gateway, now=NOW)  # type: ignore[arg-type]
    assert report.checked == 1 and report.alerts == [] and gateway.restarts == []


def test_alerts_say_what_happened_in_each_language() -> None:
    # Who hears them: bot.outbound.Outbound.to_admins (tests/bot/test_delivery.py).
    alert = watchdog.Alert(1, Trouble.CAPPED, "FAILED")
    assert "Салон" in alert_text(alert, "ru", "Салон")
    assert alert_text(alert, "en", "Rose").startswith("WhatsApp of Rose is down")
