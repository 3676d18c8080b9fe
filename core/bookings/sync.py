"""Booking sync: what the YClients webhooks missed, caught up every 30 minutes (and by hand).

Incremental from the stored `changed_after` watermark minus a few minutes of overlap (deleted
records included); or full over a window of visit dates. Records go through the same
`core.bookings.apply_records` as the webhooks, a page at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.bookings.apply import ApplyStats, apply_records
from core.locks import is_held, run_exclusive
from core.marketplace import lift_all_frozen
from core.models import Company, IntegrationStatus, SyncState
from core.yclients import Priority, YClientsClient, YClientsError

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=5)
FULL_DAYS_BACK = 90
FULL_DAYS_AHEAD = 90
PAGE_SIZE = 300

Progress = Callable[[Company, ApplyStats], None]


def client_for(client: YClientsClient, company: Company) -> YClientsClient:
    return client.with_user_token(company.yclients_user_token)


async def sync_catalogue(client: YClientsClient, company: Company) -> dict[str, Any]:
    """Services and masters for the bot's booking menu."""
    api = client_for(client, company)
    services = [
        {
            "id": s.get("id"),
            "title": s.get("title"),
            "price_min": s.get("price_min"),
            "price_max": s.get("price_max"),
        }
        for s in await api.services(company.yclients_id)
        if s.get("active", 1) not in (0, False)
    ]
    masters = [
        {"id": m.get("id"), "name": m.get("name"), "specialization": m.get("specialization")}
        for m in await api.staff(company.yclients_id)
        if not m.get("fired") and not m.get("hidden")
    ]
    company.catalogue = {
        "services": services,
        "staff": masters,
        "synced_at": datetime.now(UTC).isoformat(),
        **await _salon_info(api, company),
    }
    await company.save(update_fields=["catalogue", "updated_at"])
    return company.catalogue


_INFO_EVERY = timedelta(days=1)


async def _salon_info(api: YClientsClient, company: Company) -> dict[str, Any]:
    """The salon's address for the booking notices, read again once a day (one call; the
    shared YClients quota is tight): a failure keeps what was known."""
    known = company.catalogue or {}
    kept: dict[str, Any] = {k: known[k] for k in ("address", "info_at") if k in known}
    read_at = known.get("info_at")
    if isinstance(read_at, str):
        try:
            if datetime.now(UTC) - datetime.fromisoformat(read_at) < _INFO_EVERY:
                return kept
        except ValueError:
            pass
    try:
        info = await api.company(company.yclients_id)
    except (YClientsError, OSError) as exc:
        log.info("company %s: salon info not read (%s)", company.id, exc)
        return kept
    address = info.get("address")
    return {
        "address": address.strip() if isinstance(address, str) else "",
        "info_at": datetime.now(UTC).isoformat(),
    }


async def sync_company(
    client: YClientsClient,
    company: Company,
    *,
    full: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
    catalogue: bool = True,
    plan_visits: bool = True,
) -> ApplyStats:
    """Sync one salon's records; the watermark moves only when the whole run succeeded.
    A salon's first sync is the backfill of its old records: the visit loop plans their
    reminders but tells clients nothing about changes made before the salon joined."""
    started = now or datetime.now(UTC)
    state, _ = await SyncState.get_or_create(company=company)
    backfill = state.changed_after is None
    api = client_for(client, company)
    stats = ApplyStats()
    if full or state.changed_after is None:
        today = started.date()
        pages = api.iter_record_pages(
            company.yclients_id,
            start_date=today - timedelta(days=FULL_DAYS_BACK),
            end_date=today + timedelta(days=FULL_DAYS_AHEAD),
            with_deleted=True,
            count=PAGE_SIZE,
        )
    else:
        pages = api.iter_record_pages(
            company.yclients_id,
            changed_after=state.changed_after - OVERLAP,
            timezone=company.timezone,
            with_deleted=True,
            count=PAGE_SIZE,
        )
    try:
        async for page in pages:
            stats.add(
                await apply_records(
                    company, page, now=now, backfill=backfill, plan_visits=plan_visits
                )
            )
            if progress is not None:
                progress(company, stats)
        if catalogue:
            await sync_catalogue(client, company)
    except Exception as exc:
        state.last_run_at = started
        state.last_status = "failed"
        state.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        await state.save()
        raise
    state.changed_after = started
    state.last_run_at = started
    state.last_status = "ok"
    state.last_error = ""
    state.last_stats = stats.summary()
    await state.save()
    return stats


def company_lock(company_id: int) -> str:
    return f"yclients-sync-company-{company_id}"


async def sync_company_once(
    client: YClientsClient,
    company: Company,
    *,
    full: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
    on_start: Callable[[], None] | None = None,
) -> tuple[bool, ApplyStats | None]:
    """`sync_company`, unless this salon's sync is already running (in this process or on
    another replica): (True, stats) when it ran here, (False, None) when one was running.

    While it runs the salon's SyncState says `running` from `now`, so any replica can tell.
    """
    started = now or datetime.now(UTC)

    async def run() -> ApplyStats:
        if on_start is not None:
            on_start()
        state, _ = await SyncState.get_or_create(company=company)
        state.last_status = "running"
        state.last_run_at = started
        await state.save(update_fields=["last_status", "last_run_at"])
        return await sync_company(client, company, full=full, now=started, progress=progress)

    return await run_exclusive(company_lock(company.id), run)


async def is_running(company_id: int) -> bool:
    """Whether `sync_company_once` runs for this salon now, on any replica."""
    return await is_held(company_lock(company_id))


@dataclass
class SyncReport:
    """One tick of the job over every active salon."""

    synced: dict[int, ApplyStats] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


async def sync_all(
    client: YClientsClient,
    *,
    now: datetime | None = None,
    full: bool = False,
    application_id: int | None = None,
) -> SyncReport:
    """Sync every active salon; one salon's failure is logged and counted, the rest go on.

    With the marketplace `application_id`, frozen salons whose subscription YClients reports
    active again are unfrozen first (there is no "unfreeze" event), and synced in this tick.
    Its calls count as the cron's in the rate limiter: a share stays free for pages a browser
    is waiting on, and sync requests over the API cannot take the cron's.
    """
    client = client.with_priority(Priority.CRON)
    report = SyncReport()
    if application_id:
        try:
            await lift_all_frozen(client, application_id)
        except Exception:  # the sync itself must run whatever happens here
            log.exception("checking frozen salons failed")
    for company in await Company.filter(integration_status=IntegrationStatus.ACTIVE).order_by("id"):
        try:
            report.synced[company.id] = await sync_company(client, company, full=full, now=now)
        except (YClientsError, OSError) as exc:
            report.failed[company.id] = str(exc)
            log.warning("sync of company %s (%s) failed: %s", company.id, company.title, exc)
        except Exception as exc:  # a bug in one salon's data must not stop the others
            report.failed[company.id] = f"{type(exc).__name__}: {exc}"
            log.exception("sync of company %s (%s) crashed", company.id, company.title)
    return report
