"""What the visit loop's planning costs the booking writes: 50,000 record changes applied with
the loop on and with it off.

Run from the project root:

    .venv/bin/python bench/loop_planning.py [--dsn postgres://postgres@127.0.0.1:5432/test]

A fresh database (salonbot_bench_<random>) is created on the server of `--dsn`, migrated with
the real migrations and dropped at the end, even on failure. The records are the sync
benchmark's (bench/_support.make_records: 50,000 records of one salon over 5,000 phones, visits
85 days either side of now). Each measurement empties the tables (the salon stays) and applies
them through `core.bookings.apply_records` in pages of PAGE_SIZE, as the webhooks' batches and
the sync do: as changes, not as a first sync's backfill, so every upcoming booking gets its
notice, reminders and silent-client alert planned. Then a second pass moves every upcoming
visit by a day (the reminders move, a notice is planned for each). "off" is
`plan_visits=False`, the same code without the loop. Rounds alternate which side goes first;
the figures are the medians of the rounds, the ratio median on / median off.

With `--check` the exit code is 1 when the loop costs more than 25%.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    CHANGE_FORMAT,
    DEFAULT_DSN,
    TZ,
    BenchError,
    create_database,
    drop_database,
    load_text,
    make_records,
    median,
    require_local,
    run_main,
    server_version,
    stop_on_signals,
)

from core import db
from core.bookings import apply_records
from core.bookings.sync import PAGE_SIZE
from core.models import Company, IntegrationStatus, ScheduledMessage

COMPANY = 555
RECORDS = 50_000
PHONES = 5_000
GOAL_RATIO = 1.25
TABLES = "scheduled_message, ledger_entry, marketplace_event, booking, client"


async def reset_tables(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def moved(records: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Every upcoming, not deleted record a day later, changed a minute after the first pass."""
    out = []
    for record in records:
        when = datetime.fromisoformat(record["datetime"])
        if when <= now or record.get("deleted"):
            continue
        later = when + timedelta(days=1)
        out.append(
            {
                **record,
                "datetime": later.isoformat(),
                "date": later.strftime("%Y-%m-%d %H:%M:%S"),
                "last_change_date": (now + timedelta(minutes=1)).strftime(CHANGE_FORMAT),
            }
        )
    return out


async def apply_all(
    company: Company, records: Sequence[dict[str, Any]], now: datetime, plan: bool
) -> float:
    started = time.perf_counter()
    for i in range(0, len(records), PAGE_SIZE):
        await apply_records(company, records[i : i + PAGE_SIZE], now=now, plan_visits=plan)
    return time.perf_counter() - started


async def measure(
    url: str,
    company: Company,
    records: Sequence[dict[str, Any]],
    second: Sequence[dict[str, Any]],
    now: datetime,
    plan: bool,
) -> tuple[float, float, int]:
    await reset_tables(url)
    first_s = await apply_all(company, records, now, plan)
    second_s = await apply_all(company, second, now + timedelta(minutes=2), plan)
    rows = await ScheduledMessage.all().count()
    if plan and rows == 0:
        raise BenchError("the loop planned nothing")
    if not plan and rows:
        raise BenchError("the loop planned rows while off")
    return first_s, second_s, rows


async def main(args: argparse.Namespace) -> int:
    require_local(args.dsn)
    stop_on_signals()
    url = await create_database(args.dsn)
    orm_open = False
    try:
        print(f"database {url.rsplit('/', 1)[1]} (PostgreSQL {await server_version(url)})")
        print(f"nproc {os.cpu_count()}, python {sys.version.split()[0]}, load {load_text()}")
        await db.init_orm(url, pool_size=20)
        orm_open = True
        await db.migrate()
        company = await Company.create(
            yclients_id=COMPANY,
            hook_token=secrets.token_hex(8),
            title="bench",
            timezone=TZ,
            integration_status=IntegrationStatus.ACTIVE,
        )
        now = datetime.now(UTC).replace(microsecond=0)
        records = make_records(COMPANY, args.records, phones=PHONES, seed=args.seed, now=now)
        second = moved(records, now)
        print(
            f"{len(records):,} records ({PHONES:,} phones) in pages of {PAGE_SIZE}, then "
            f"{len(second):,} of them moved a day"
        )
        totals: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            for plan in order:
                first_s, second_s, rows = await measure(url, company, records, second, now, plan)
                totals[plan].append(first_s + second_s)
                print(
                    f"  round {r + 1} loop {'on ' if plan else 'off'}: {first_s:6.2f} s + "
                    f"{second_s:6.2f} s = {first_s + second_s:6.2f} s  ({rows:,} rows planned)",
                    flush=True,
                )
        on, off = median(totals[True]), median(totals[False])
        ratio = on / off
        print(f"\nmedian: loop off {off:.2f} s, loop on {on:.2f} s, ratio {ratio:.3f}")
        print(f"goal: ratio <= {GOAL_RATIO:.2f}: {'met' if ratio <= GOAL_RATIO else 'MISSED'}")
        return 1 if args.check and ratio > GOAL_RATIO else 0
    finally:
        if orm_open:
            await db.close_orm()
        await drop_database(args.dsn, url)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="admin DSN on 127.0.0.1")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--records", type=int, default=RECORDS)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


if __name__ == "__main__":
    run_main(main(parse_args()), "the bench database was dropped")
