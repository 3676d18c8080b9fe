"""Reminder dispatch: reminders of 1,000 salons all due in the same minute, sent by the visit
loop's dispatcher through the Telegram fake at its 30 messages/s per-bot limit.

Run from the project root:

    .venv/bin/python bench/loop_dispatch.py [--reminders 20000] [--replicas 1 2]

A fresh database (salonbot_bench_<random>) is created on the server of `--dsn`, migrated with
the real migrations and dropped at the end, even on failure. 1,000 salons share the one bot
(the worst case for the limit); each reminder is a day-before reminder of its own client's
booking tomorrow, all due at the start. The Bot API is tests/fakes/telegram.FakeBotAPI on
127.0.0.1, refusing with 429 (`retry_after` 1) a send past 30 in any second or a second send
to a chat within a second. The dispatchers are the product's (bot.visits.Dispatcher with
bot.visits.Paced around a Telegram ClientChannel, the real wall clock); with R replicas, R
dispatchers run side by side in this process, each claiming with FOR UPDATE SKIP LOCKED on
its own transactions and pacing at 30 / R messages a second (TELEGRAM_SEND_RATE).

It reports the wall time against the limit's bound, reminders / 30 s, the lateness (sent_at
minus due_at) percentiles, the 429s, and checks that every reminder reached its chat exactly
once. The full 20,000 takes about 11 minutes per replica count; `--reminders` scales it down.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_DSN,
    TZ,
    BenchError,
    create_database,
    drop_database,
    load_text,
    median,
    percentile,
    require_local,
    run_main,
    server_version,
    stop_on_signals,
)

from bot.dialog.replies import Reply
from bot.outbound import Outbound
from bot.visits import Dispatcher, DispatchPolicy, Kinds, Paced
from core import db
from core.backoff import Clock
from core.models import (
    Booking,
    Client,
    Company,
    IntegrationStatus,
    ScheduledMessage,
    ScheduledStatus,
)
from core.visits import Due, kinds
from tests.fakes.telegram import TOKEN, FakeBotAPI, TelegramTestChannel

SALONS = 1_000
REMINDERS = 20_000
LIMIT = 30.0
GOAL_TOLERANCE = 0.10
TABLES = "scheduled_message, booking, client, company"


async def reminder(due: Due) -> Any:
    """A stand-in for the dialog's reminder: one short message."""
    title = due.company.title
    return lambda locale: [Reply(f"{title}: ждём вас завтра")]


def registry() -> Kinds:
    found = Kinds()
    found.register(kinds.DAY_BEFORE, reminder)
    return found


async def seed(url: str, reminders: int, due: datetime) -> None:
    """The salons, a client with a Telegram chat and a booking tomorrow per reminder, and the
    reminders, all due at `due`."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    await Company.bulk_create(
        [
            Company(
                yclients_id=100_000 + n,
                hook_token=secrets.token_hex(8),
                title=f"Салон {n}",
                timezone=TZ,
                quiet_hours="off",
                integration_status=IntegrationStatus.ACTIVE,
            )
            for n in range(SALONS)
        ],
        batch_size=1000,
    )
    companies = [c.id for c in await Company.all().order_by("id")]
    visit = due + timedelta(days=1)
    await Client.bulk_create(
        [
            Client(
                company_id=companies[n % SALONS],
                phone=f"+7999{n:07d}",
                name=f"Клиент {n}",
                code=f"B{n:08d}",
                telegram_user_id=1_000_000 + n,
                last_channel="telegram",
            )
            for n in range(reminders)
        ],
        batch_size=2000,
    )
    clients = await Client.all().order_by("id").values_list("id", "company_id")
    await Booking.bulk_create(
        [
            Booking(
                company_id=company_id,
                yclients_record_id=n + 1,
                client_id=client_id,
                visit_at=visit,
                services=[{"id": 1, "title": "Стрижка", "cost": 1500}],
                staff_name="Мария",
                last_change_at=due,
            )
            for n, (client_id, company_id) in enumerate(clients)
        ],
        batch_size=2000,
    )
    bookings = await Booking.all().order_by("id").values_list("id", "company_id", "client_id")
    await ScheduledMessage.bulk_create(
        [
            ScheduledMessage(
                company_id=company_id,
                booking_id=booking_id,
                client_id=client_id,
                kind=kinds.DAY_BEFORE,
                key=kinds.per_visit_key(kinds.DAY_BEFORE, booking_id, visit),
                due_at=due,
            )
            for booking_id, company_id, client_id in bookings
        ],
        batch_size=2000,
    )
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def run(url: str, reminders: int, replicas: int, limit_s: float) -> dict[str, Any]:
    await seed(url, reminders, datetime.now(UTC).replace(microsecond=0))
    # All due the moment the dispatchers start (the seeding took its time).
    due = datetime.now(UTC)
    await ScheduledMessage.all().update(due_at=due)
    async with FakeBotAPI(per_second=LIMIT, chat_gap=1.0, retry_after=1) as api:
        bots = [
            Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
            for _ in range(replicas)
        ]
        dispatchers = [
            Dispatcher(
                Outbound(
                    {
                        "telegram": Paced(
                            TelegramTestChannel(bot), Clock(), per_second=LIMIT / replicas
                        )
                    }
                ),
                registry(),
                policy=DispatchPolicy(idle=0.2),
            )
            for bot in bots
        ]
        started = time.perf_counter()
        tasks = [asyncio.create_task(d.run()) for d in dispatchers]
        try:
            async with asyncio.timeout(limit_s):
                while True:
                    await asyncio.sleep(0.5)
                    left = await ScheduledMessage.filter(
                        status__in=[ScheduledStatus.PENDING, ScheduledStatus.SENDING]
                    ).count()
                    if not left:
                        break
        except TimeoutError:
            raise BenchError(f"not done within {limit_s:g} s") from None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for bot in bots:
                await bot.session.close()
        sends = api.calls_to("sendMessage")
        last = max(c.at for c in sends)
        first = min(c.at for c in sends)
        wall = time.perf_counter() - started
    per_chat = Counter(int(c.params["chat_id"]) for c in sends)
    twice = sum(1 for n in per_chat.values() if n > 1)
    statuses = Counter(
        await ScheduledMessage.all().values_list("status", flat=True)  # type: ignore[arg-type]
    )
    if twice or len(per_chat) != reminders or statuses[ScheduledStatus.SENT] != reminders:
        raise BenchError(
            f"{len(sends)} sends to {len(per_chat)} chats ({twice} twice), statuses {statuses}"
        )
    late = sorted(
        (sent - d).total_seconds()
        for sent, d in await ScheduledMessage.all().values_list("sent_at", "due_at")
    )
    return {
        "wall": wall,
        "sending": last - first,
        "refused": api.refused,
        "p50": percentile(late, 0.50),
        "p90": percentile(late, 0.90),
        "p99": percentile(late, 0.99),
        "max": late[-1],
        "per_replica": [d.outcomes["sent"] for d in dispatchers],
    }


async def main(args: argparse.Namespace) -> int:
    require_local(args.dsn)
    stop_on_signals()
    url = await create_database(args.dsn)
    orm_open = False
    missed = False
    try:
        print(f"database {url.rsplit('/', 1)[1]} (PostgreSQL {await server_version(url)})")
        print(f"nproc {os.cpu_count()}, python {sys.version.split()[0]}, load {load_text()}")
        await db.init_orm(url, pool_size=20)
        orm_open = True
        await db.migrate()
        bound = args.reminders / LIMIT
        print(
            f"{args.reminders:,} reminders of {SALONS:,} salons due at once, one bot limited to "
            f"{LIMIT:g}/s: bound {bound:.1f} s"
        )
        for replicas in args.replicas:
            results = []
            for r in range(args.rounds):
                result = await run(url, args.reminders, replicas, args.timeout)
                results.append(result)
                print(
                    f"  {replicas} replica(s) round {r + 1}: wall {result['wall']:.1f} s "
                    f"(first to last send {result['sending']:.1f} s), 429s {result['refused']}, "
                    f"lateness p50 {result['p50']:.1f} s p90 {result['p90']:.1f} s "
                    f"p99 {result['p99']:.1f} s max {result['max']:.1f} s, "
                    f"sent per replica {result['per_replica']}",
                    flush=True,
                )
            wall = median([x["wall"] for x in results])
            ratio = wall / bound
            ok = ratio <= 1 + GOAL_TOLERANCE
            missed |= not ok
            print(
                f"  {replicas} replica(s) median wall {wall:.1f} s = {ratio:.3f} x bound; "
                f"median lateness p50 {median([x['p50'] for x in results]):.1f} s "
                f"p99 {median([x['p99'] for x in results]):.1f} s: "
                f"{'met' if ok else 'MISSED'} (goal: within {GOAL_TOLERANCE:.0%} of the bound)"
            )
        return 1 if args.check and missed else 0
    finally:
        if orm_open:
            await db.close_orm()
        await drop_database(args.dsn, url)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="admin DSN on 127.0.0.1")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--reminders", type=int, default=REMINDERS)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    return parser.parse_args(argv)


if __name__ == "__main__":
    run_main(main(parse_args()), "the bench database was dropped")
