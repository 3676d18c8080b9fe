"""Throughput of the full YClients booking sync, and its pace under the 5 requests/s limit.

Run from the project root:

    .venv/bin/python bench/sync.py [--dsn postgres://postgres@127.0.0.1:5432/test] [--check]

A fresh database (salonbot_bench_<random>) is created on the server of `--dsn`, migrated with
the real migrations and dropped at the end, even on failure. The YClients API is the test
suite's emulator (tests/fakes/yclients.py) on 127.0.0.1, in this process.

* unlimited: 50,000 records over 5,000 clients' phones, no rate limit; every round starts
  from empty tables and runs `core.bookings.sync.sync_company(client, company, full=True)`.
  Reports records/s (median of the rounds) and checks the sync made exactly
  ceil(50,000 / PAGE_SIZE) list calls, created every booking and client, and awarded every
  bonus once.
* limited: 2,950 records (10 pages of PAGE_SIZE) with `rate_limit=5.0` (per_minute=None) and
  `catalogue=False` (its two calls are not list calls); the wall time must be within 10% of
  list calls / 5 seconds. Then once more, not a goal, with the emulator itself refusing a sixth
  request within any second (429), to show what jitter against a strict server costs.

With `--check` the exit code is 1 when a goal is missed (2 when the run itself failed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_DSN,
    TZ,
    BenchError,
    create_database,
    drop_database,
    expected_bonuses,
    load_text,
    make_records,
    median,
    require_local,
    run_main,
    server_version,
    stop_on_signals,
)

from core import db, ledger
from core.bookings.sync import PAGE_SIZE, sync_company
from core.models import Booking, Client, Company, IntegrationStatus, LedgerEntry, LedgerKind
from core.yclients import YClientsClient
from tests.fakes.yclients import (
    CHANGE_FORMAT,
    PARTNER_TOKEN,
    USER_TOKEN,
    YClientsEmulator,
    _day,
    _moment,
    envelope,
)

COMPANY = 555
RECORDS = 50_000
PHONES = 5_000
LIMITED_RECORDS = 2_950  # ceil(2,950 / 300) = 10 list calls, about 2 s at 5/s
RATE = 5.0
ACCRUAL_PERCENT = 5
GOAL_RECORDS_PER_S = 5_000.0
GOAL_PACE_TOLERANCE = 0.10
TABLES = "ledger_entry, inbox_event, marketplace_event, sync_state, booking, client"


class ListingEmulator(YClientsEmulator):
    """The emulator with its record listing made O(page) instead of O(all records) per call.

    The test emulator filters and sorts every record of the salon on every page request
    (parsing two dates per record), which at 50,000 records costs it far more than the sync
    it serves. Here the filtered, sorted selection is computed once per distinct query (page
    and count aside), with the emulator's own rules, and kept until `forget()`. Paths,
    envelopes, token checks, call counting and the rate-limit fault all stay the emulator's
    own. The handler's time is summed in `serving_s` to show what the fake costs.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._selections: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self.serving_s = 0.0

    def forget(self) -> None:
        self._selections.clear()

    async def _records(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await self._listing(request)
        finally:
            self.serving_s += time.perf_counter() - started

    async def _listing(self, request: web.Request) -> web.Response:
        company = self._company_or_404(request)
        if isinstance(company, web.Response):
            return company
        refused = self._check_user(request)
        if refused is not None:
            return refused
        query = request.query
        try:
            page, count = int(query.get("page", "1")), int(query.get("count", "50"))
        except ValueError:
            page = count = 0
        if page < 1 or count < 1:
            # Whatever the emulator says to a bad page or count.
            return await super()._records(request)
        key = (
            company["id"],
            tuple(sorted((k, v) for k, v in query.items() if k not in ("page", "count"))),
        )
        selected = self._selections.get(key)
        if selected is None:
            selected = self._selections[key] = self._select(company["id"], query)
        chunk = selected[(page - 1) * count : page * count]
        return web.json_response(envelope(chunk, {"page": page, "total_count": len(selected)}))

    def _select(self, company_id: int, query: Any) -> list[dict[str, Any]]:
        tz = ZoneInfo(self.companies[company_id]["timezone_name"])
        start_day = _day(query.get("start_date"))
        end_day = _day(query.get("end_date"))
        after_at = _moment(query.get("changed_after"), tz)
        before_at = _moment(query.get("changed_before"), tz)
        with_deleted = query.get("with_deleted") in {"1", "true"}
        selected = []
        for record in self.records[company_id].values():
            visit = datetime.fromisoformat(record["date"]).date()
            changed = datetime.strptime(record["last_change_date"], CHANGE_FORMAT)
            if record.get("deleted") and not with_deleted:
                continue
            if (start_day and visit < start_day) or (end_day and visit > end_day):
                continue
            if (after_at and changed < after_at) or (before_at and changed > before_at):
                continue
            selected.append(record)
        selected.sort(key=lambda r: (r["datetime"], r["id"]))
        return selected


@dataclass(frozen=True, slots=True)
class SyncRun:
    records: int
    seconds: float
    list_calls: int
    emulator_s: float

    @property
    def per_s(self) -> float:
        return self.records / self.seconds


async def reset_tables(url: str) -> None:
    """Empty everything the sync writes (the company stays) and give PostgreSQL a quiet start."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def verify(company: Company, records: Sequence[dict[str, Any]], stats: Any) -> None:
    """Every record a booking, every phone a client, every bonus awarded exactly once."""
    phones = {r["client"]["phone"] for r in records}
    expected = expected_bonuses(records, company.accrual_percent)
    bookings = await Booking.filter(company_id=company.id).count()
    clients = await Client.filter(company_id=company.id).count()
    accruals = await LedgerEntry.filter(company_id=company.id, kind=LedgerKind.ACCRUAL)
    points = sum(e.amount for e in accruals)
    problems = []
    if stats.fetched != len(records) or stats.created != len(records):
        problems.append(f"fetched {stats.fetched}, created {stats.created} of {len(records)}")
    if stats.unmatched:
        problems.append(f"{stats.unmatched} records left unmatched")
    if bookings != len(records):
        problems.append(f"{bookings} bookings for {len(records)} records")
    if clients != len(phones):
        problems.append(f"{clients} clients for {len(phones)} phones")
    if (len(accruals), points) != (expected["awarded"], expected["points"]):
        problems.append(
            f"{len(accruals)} accruals of {points} points, expected {expected['awarded']}"
            f" of {expected['points']}"
        )
    if stats.awarded != expected["awarded"]:
        problems.append(f"stats.awarded {stats.awarded}, expected {expected['awarded']}")
    mismatches = await ledger.reconcile(company.id)
    if mismatches:
        problems.append(f"ledger does not reconcile: {mismatches[:3]}")
    if problems:
        raise BenchError("; ".join(problems))


async def run_sync(
    url: str,
    emulator: ListingEmulator,
    client: YClientsClient,
    company: Company,
    records: Sequence[dict[str, Any]],
    *,
    time_limit: float,
    catalogue: bool = True,
) -> SyncRun:
    await reset_tables(url)
    emulator.forget()
    path = f"/api/v1/records/{COMPANY}"
    calls_before = emulator.calls_to(path)
    serving_before = emulator.serving_s
    started = time.perf_counter()
    try:
        async with asyncio.timeout(time_limit):
            stats = await sync_company(client, company, full=True, catalogue=catalogue)
    except TimeoutError:
        raise BenchError(f"the sync took longer than {time_limit:g}s") from None
    elapsed = time.perf_counter() - started
    list_calls = emulator.calls_to(path) - calls_before
    await verify(company, records, stats)
    return SyncRun(len(records), elapsed, list_calls, emulator.serving_s - serving_before)


def list_calls_for(records: int) -> int:
    """Pages until one shorter than PAGE_SIZE: ceil(records / PAGE_SIZE), plus one (empty) page
    when records is a multiple of PAGE_SIZE, as nothing else tells the client it is the end."""
    return records // PAGE_SIZE + 1


def load_records(emulator: YClientsEmulator, records: Sequence[dict[str, Any]]) -> None:
    emulator.records[COMPANY] = {r["id"]: r for r in records}


async def main(args: argparse.Namespace) -> int:
    require_local(args.dsn)
    stop_on_signals()
    try:
        url = await create_database(args.dsn)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BenchError(f"cannot create the bench database on {args.dsn}: {exc}") from None
    orm_open = False
    unlimited: list[SyncRun] = []
    limited: list[SyncRun] = []
    try:
        print(f"database {url.rsplit('/', 1)[1]} (PostgreSQL {await server_version(url)})")
        print(
            f"nproc {os.cpu_count()}, python {sys.version.split()[0]}, PAGE_SIZE {PAGE_SIZE},"
            f" load {load_text()}"
        )
        await db.init_orm(url, pool_size=20)  # what `salonbot serve` uses
        orm_open = True
        await db.migrate()
        company = await Company.create(
            yclients_id=COMPANY,
            hook_token=secrets.token_hex(8),
            title="bench",
            timezone=TZ,
            accrual_percent=ACCRUAL_PERCENT,
            integration_status=IntegrationStatus.ACTIVE,
        )
        now = datetime.now(UTC)
        big = make_records(COMPANY, args.records, phones=PHONES, seed=args.seed, now=now)
        small = make_records(
            COMPANY, args.limited_records, phones=PHONES, seed=args.seed + 1, now=now
        )
        async with ListingEmulator() as emulator:
            emulator.add_company(COMPANY, title="bench", timezone_name=TZ)
            emulator.add_service(COMPANY, title="Стрижка", price_min=1500, price_max=1500)
            emulator.add_staff(COMPANY, name="Мария")

            print(f"\nunlimited: {len(big):,} records, {PHONES:,} phones, no rate limit")
            load_records(emulator, big)
            async with YClientsClient(
                emulator.url, PARTNER_TOKEN, USER_TOKEN, rate_limit=None
            ) as client:
                for r in range(args.rounds):
                    run = await run_sync(
                        url, emulator, client, company, big, time_limit=args.timeout
                    )
                    unlimited.append(run)
                    print(
                        f"  round {r + 1}: {run.seconds:6.2f} s  {run.per_s:7.0f} records/s"
                        f"  {run.list_calls} list calls  (emulator serving {run.emulator_s:.2f} s)",
                        flush=True,
                    )

            print(
                f"\nlimited: {len(small):,} records, YClientsClient(rate_limit={RATE:g},"
                " per_minute=None), catalogue=False"
            )
            load_records(emulator, small)
            async with YClientsClient(
                emulator.url, PARTNER_TOKEN, USER_TOKEN, rate_limit=RATE, per_minute=None
            ) as client:
                for r in range(args.rounds):
                    await asyncio.sleep(1.0)  # the limiter's slots from the last round run out
                    run = await run_sync(
                        url,
                        emulator,
                        client,
                        company,
                        small,
                        time_limit=args.timeout,
                        catalogue=False,
                    )
                    limited.append(run)
                    print(
                        f"  round {r + 1}: {run.seconds:6.2f} s for {run.list_calls} list calls"
                        f"  (list calls / {RATE:g} = {run.list_calls / RATE:.2f} s)",
                        flush=True,
                    )
                # Not a goal: the same with the emulator refusing (429) a sixth request within
                # any one second, as a strict reading of YClients' limit would.
                emulator.rate_limit(int(RATE))
                await asyncio.sleep(1.2)
                strict = await run_sync(
                    url, emulator, client, company, small, time_limit=args.timeout, catalogue=False
                )
                emulator.rate_limit(None)
                print(
                    f"  strict emulator: {strict.seconds:6.2f} s for {strict.list_calls} list"
                    f" calls ({strict.list_calls - list_calls_for(len(small))} answered"
                    " 429 and retried)",
                    flush=True,
                )
    finally:
        if orm_open:
            await db.close_orm()
        await drop_database(args.dsn, url)

    print(f"load average at the end: {load_text()}")
    expected_calls = list_calls_for(args.records)
    expected_limited = list_calls_for(args.limited_records)
    per_s = median([r.per_s for r in unlimited])
    seconds = median([r.seconds for r in unlimited])
    calls_ok = all(r.list_calls == expected_calls for r in unlimited)
    limited_calls_ok = all(r.list_calls == expected_limited for r in limited)
    target = expected_limited / RATE
    pace = median([r.seconds for r in limited])
    pace_ok = abs(pace - target) <= GOAL_PACE_TOLERANCE * target

    print(f"\nmedian of {args.rounds} rounds")
    print(
        f"unlimited: {args.records:,} records in {seconds:.2f} s = {per_s:,.0f} records/s"
        f" (emulator serving {median([r.emulator_s for r in unlimited]):.2f} s of it)"
    )
    print(
        f"  list calls {unlimited[0].list_calls} (expected {args.records} // {PAGE_SIZE} + 1"
        f" = {expected_calls}) {'OK' if calls_ok else 'WRONG'}"
    )
    print(
        f"limited:   {args.limited_records:,} records, {limited[0].list_calls} list calls in"
        f" {pace:.2f} s; target {target:.2f} s ±{GOAL_PACE_TOLERANCE:.0%}"
        f" ({pace / target:.1%} of it)"
    )
    speed_ok = per_s >= GOAL_RECORDS_PER_S
    print(
        f"\ngoal: >= {GOAL_RECORDS_PER_S:,.0f} records/s: {per_s:,.0f}"
        f" {'PASS' if speed_ok else 'FAIL'}"
    )
    print(f"goal: exactly {expected_calls} list calls: {'PASS' if calls_ok else 'FAIL'}")
    print(
        f"goal: limited wall time within {GOAL_PACE_TOLERANCE:.0%} of {target:.2f} s:"
        f" {pace:.2f} s {'PASS' if pace_ok and limited_calls_ok else 'FAIL'}"
    )
    passed = speed_ok and calls_ok and pace_ok and limited_calls_ok
    return 1 if args.check and not passed else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="admin DSN on 127.0.0.1")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--records", type=int, default=RECORDS, help="unlimited case")
    parser.add_argument(
        "--limited-records", type=int, default=LIMITED_RECORDS, help="rate-limited case"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per sync, seconds")
    parser.add_argument("--seed", type=int, default=1, help="seed of the records")
    args = parser.parse_args(argv)
    if not 1 <= args.records <= 500_000 or not 1 <= args.limited_records <= 30_000:
        parser.error("--records 1..500000, --limited-records 1..30000")
    return args


if __name__ == "__main__":
    run_main(main(parse_args()), "database dropped")
