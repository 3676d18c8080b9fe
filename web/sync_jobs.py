"""Syncs asked for over the API (`/api/v1/yclients/sync-bookings`): one job per salon.

A job runs in the background of the web process and the request is answered at once. A second
request while the salon's job runs gets that job's state instead of a second sync; across
replicas a per-salon advisory lock (core.bookings.sync.sync_company_once) does the same, and
the salon's SyncState tells any replica how the last run went. Jobs are cancelled on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from core.bookings import ApplyStats, sync
from core.models import Company, SyncState
from core.notifications import Notifier, notify_committed
from core.yclients import Priority, YClientsClient, YClientsError
from web.keys import NOTIFIER, SYNC_JOBS

log = logging.getLogger(__name__)

JobStatus = Literal["running", "done", "failed", "elsewhere"]

CRASHED = "the sync failed on our side; the server log has the details. Try again later."
INTERRUPTED = "the sync stopped before it finished (the server restarted); start it again."


@dataclass
class SyncJob:
    """One salon's sync: `running` (with progress so far), then `done` or `failed`.

    `elsewhere`: another replica was already syncing the salon, so this one did nothing.
    """

    company: Company
    full: bool
    started_at: datetime
    status: JobStatus = "running"
    finished_at: datetime | None = None
    pages: int = 0
    progress: dict[str, int] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    claimed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def answer(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "company": self.company.yclients_id,
            "full": self.full,
            "started_at": self.started_at.isoformat(),
        }
        if self.status == "running":
            body["progress"] = {"pages": self.pages, **self.progress}
        if self.finished_at is not None:
            body["finished_at"] = self.finished_at.isoformat()
        if self.result is not None:
            body.update(self.result)
        if self.error is not None:
            body["error"] = self.error
        return body


class SyncJobs:
    """The web process's sync jobs, the latest one per salon."""

    def __init__(
        self, notifier: Notifier, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._notifier = notifier
        self._clock = clock
        self._jobs: dict[int, SyncJob] = {}

    def get(self, company_id: int) -> SyncJob | None:
        return self._jobs.get(company_id)

    async def start(
        self, client: YClientsClient, company: Company, *, full: bool
    ) -> tuple[SyncJob, bool]:
        """(the salon's running job, False) or (a new one, True) once it holds the salon's
        lock (or found another replica holding it: status `elsewhere`)."""
        current = self._jobs.get(company.id)
        if current is not None and current.status == "running":
            return current, False
        job = SyncJob(company, full, self._clock())
        self._jobs[company.id] = job
        job.task = asyncio.create_task(
            self._run(job, client.with_priority(Priority.BULK)), name=f"sync-{company.id}"
        )
        await job.claimed.wait()
        return job, True

    async def _run(self, job: SyncJob, client: YClientsClient) -> None:
        def progress(_company: Company, stats: ApplyStats) -> None:
            job.pages += 1
            job.progress = stats.summary()

        try:
            ran, stats = await sync.sync_company_once(
                client,
                job.company,
                full=job.full,
                now=job.started_at,
                progress=progress,
                on_start=job.claimed.set,
            )
            if not ran or stats is None:
                job.status = "elsewhere"
                return
            # Committed: a notice that cannot go out does not make the sync a failure.
            await notify_committed(self._notifier, stats.changes)
            job.result = {**stats.summary(), "unmatched_records": stats.unmatched_records}
            job.status = "done"
        except YClientsError as exc:
            log.warning("manual sync of company %s failed: %s", job.company.id, exc)
            job.status, job.error = "failed", str(exc)
        except asyncio.CancelledError:
            job.status, job.error = "failed", INTERRUPTED
            raise
        except Exception:
            log.exception("manual sync of company %s crashed", job.company.id)
            job.status, job.error = "failed", CRASHED
        finally:
            job.finished_at = self._clock()
            job.claimed.set()

    async def close(self) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def stored_answer(company: Company) -> dict[str, Any] | None:
    """The salon's last sync as its SyncState tells it (a run on another replica, or before a
    restart, or by the cron); None when it never ran."""
    state = await SyncState.get_or_none(company_id=company.id)
    if state is None or state.last_run_at is None or state.last_status == "never":
        return None
    body: dict[str, Any] = {
        "company": company.yclients_id,
        "started_at": state.last_run_at.isoformat(),
    }
    if state.last_status == "running":
        if await sync.is_running(company.id):
            return {"status": "running", **body}
        return {"status": "failed", **body, "error": INTERRUPTED}
    if state.last_status == "ok":
        return {"status": "done", **body, **state.last_stats}
    return {"status": "failed", **body, "error": state.last_error or CRASHED}


async def sync_jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    """Needs the channels (NOTIFIER): list it after channels_ctx."""
    jobs = SyncJobs(app[NOTIFIER])
    app[SYNC_JOBS] = jobs
    yield
    await jobs.close()
