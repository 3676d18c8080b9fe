"""MAX updates through the adapter (bot.max) against the fake MAX Bot API, beside the Telegram
benchmark (bench/bot.py) in the same run, on PostgreSQL.

Run from the project root:

    .venv/bin/python bench/max.py [--dsn postgres://postgres@127.0.0.1:5432/test] [--check]

A fresh database (salonbot_bench_<random>) is created, migrated, seeded and dropped at the end,
even on failure: one salon, 1,000 clients who joined in both Telegram and MAX (each with a
balance, ledger history and three visits), 256 staff members (a Telegram id, and a phone MAX
vouched for). Everyone first opens the salon's link in both messengers, then a warm-up of 500
updates a side; none of that is measured.

The same 10,000 updates (the mix of bench/bot.py: 30% "🎁 Bonuses", 25% "🗓 Visits", 20%
"🔑 My code", 25% redeem-confirm: `/redeem CODE AMOUNT`, then the tap on Confirm) go

* to **Telegram** as bench/bot.py sends them: the production dispatcher over the tests' fake
  Bot API session, in process (no HTTP);
* to **MAX** through `MaxBot.handle` (the adapter, the dialog, core.max's client with its
  per-chat limit of 2 actions a second) over real HTTP to the fake MAX Bot API
  (tests/fakes/max.py), which runs in a child process so its CPU is not counted here. A MAX
  turn makes more requests than a Telegram one: a press is answered (`POST /answers`) besides
  the reply, and a QR is uploaded (`POST /uploads`, the upload, then the message).

Two loads per side, as in bench/bot.py: as fast as it goes (32 workers), and `--rate` updates a
second offered (200), each in its own task, timed from when it was due. A staff member's
turns are spread over 256 people, so MAX's per-chat limit waits only when a real chat would.

After the run every update must have been answered, no handler may have failed, the ledger
must reconcile and hold exactly one redemption per confirm, else exit 2. With `--check` the
exit code is 1 when the goal is missed: MAX at least as many updates/s as Telegram at most,
and its p99 under 50 ms at 200 updates/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import logging
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from _support import (  # noqa: E402
    DEFAULT_DSN,
    BenchError,
    create_database,
    drop_database,
    require_local,
    server_version,
)
from aiogram import Bot  # noqa: E402
from tortoise import timezone  # noqa: E402

from bot.dialog import Dialog  # noqa: E402
from bot.max.channel import MaxBot  # noqa: E402
from bot.max.delivery import MaxChannel  # noqa: E402
from bot.notifier import RoutingNotifier  # noqa: E402
from bot.outbound import Outbound  # noqa: E402
from bot.telegram.delivery import TelegramChannel  # noqa: E402
from bot.telegram.dispatcher import build_dispatcher  # noqa: E402
from core import db, ledger  # noqa: E402
from core.max import MaxClient  # noqa: E402
from core.models import Client, LedgerEntry, LedgerKind, MaxChat, Staff  # noqa: E402
from core.notifications import LoggingNotifier  # noqa: E402
from tests.fakes.max import TOKEN as MAX_TOKEN  # noqa: E402
from tests.fakes.max import FakeMaxAPI, MaxUser  # noqa: E402
from tests.fakes.telegram import TOKEN, Person  # noqa: E402


def _telegram_bench() -> Any:
    """bench/bot.py as a module (`import bot` would be the bot package)."""
    spec = importlib.util.spec_from_file_location("telegram_bench", ROOT / "bench" / "bot.py")
    if spec is None or spec.loader is None:
        raise BenchError("bench/bot.py is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules["telegram_bench"] = module
    spec.loader.exec_module(module)
    return module


tg = _telegram_bench()

STAFF = 256
UPDATES = 10_000
WARMUP = 500
GOAL_RATE = 200.0
GOAL_P99_MS = 50.0
MAX_ID = 50_000_000


class BenchMaxClient(MaxClient):
    """core.max's client, counting what it sends and keeping each staff chat's last Confirm
    payload (as bench/bot.py's session does for Telegram)."""

    def __init__(self, token: str, base_url: str) -> None:
        super().__init__(token, base_url)
        self.confirm: dict[int, str] = {}
        self.sent = 0

    async def send(self, user_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        for attachment in body.get("attachments") or []:
            if attachment.get("type") == "inline_keyboard":
                for row in attachment["payload"]["buttons"]:
                    for button in row:
                        if str(button.get("payload", "")).startswith("rc:"):
                            self.confirm[user_id] = button["payload"]
        self.sent += 1
        return await super().send(user_id, body)

    async def answer(self, callback_id: str, user_id: int, **kwargs: Any) -> None:
        self.sent += 1
        await super().answer(callback_id, user_id, **kwargs)


class MaxRunner(tg.Runner):  # type: ignore[misc,name-defined]
    """bench/bot.py's Runner (its two loads), feeding MAX updates to `MaxBot.handle`."""

    def __init__(self, bot: MaxBot, client: BenchMaxClient, staff: list[MaxUser]) -> None:
        self.bot = bot
        self.client = client
        self.free_staff: asyncio.Queue[MaxUser] = asyncio.Queue()
        for person in staff:
            self.free_staff.put_nowait(person)
        self.latencies: list[float] = []
        self.silent = 0

    async def feed(self, raw: dict[str, Any], arrived: float | None = None) -> None:
        before = self.client.sent
        started = tg.time.perf_counter() if arrived is None else arrived
        await self.bot.handle(raw)
        self.latencies.append((tg.time.perf_counter() - started) * 1000)
        if self.client.sent == before:
            self.silent += 1

    async def run_job(self, job: Any, arrived: float | None = None) -> None:
        if job.kind != "redeem":
            await self.feed(job.person.says(tg.LABELS[job.kind]), arrived)
            return
        staff = await self.free_staff.get()
        try:
            await self.feed(staff.says(f"/redeem {job.code} {job.amount}"), arrived)
            await self.feed(staff.presses(self.client.confirm.pop(staff.user_id, "rc:none")))
        finally:
            self.free_staff.put_nowait(staff)


async def seed() -> tuple[list[tuple[Person, str]], list[Person], list[MaxUser], list[MaxUser]]:
    """bench/bot.py's salon, clients and visits; the clients in MAX too; 256 staff in both."""
    people, _staff = await tg.seed_data()
    clients = list(await Client.all().order_by("id"))
    for n, client in enumerate(clients):
        client.max_user_id = MAX_ID + n
    await Client.bulk_update(clients, fields=["max_user_id"], batch_size=500)
    company_id = clients[0].company_id
    await Staff.all().delete()
    tg_staff = [Person(3_000_000 + n, f"Сотрудник {n}") for n in range(STAFF)]
    max_staff = [MaxUser(MAX_ID + 900_000 + n, f"Сотрудник {n}") for n in range(STAFF)]
    await Staff.bulk_create(
        [
            Staff(
                company_id=company_id,
                telegram_user_id=p.id,
                phone=f"+7998{n:07d}",
                name=p.first_name,
            )
            for n, p in enumerate(tg_staff)
        ]
    )
    # Each staff member shared the phone MAX vouched for (bot.max keeps it on the chat).
    await MaxChat.bulk_create(
        [
            MaxChat(user_id=u.user_id, phone=f"+7998{n:07d}", data={})
            for n, u in enumerate(max_staff)
        ]
    )
    return people, tg_staff, [MaxUser(MAX_ID + n, c.name) for n, c in enumerate(clients)], max_staff


async def serve_fake() -> None:
    """The child process: the fake MAX Bot API until stdin closes."""
    async with FakeMaxAPI(MAX_TOKEN) as fake:
        print(fake.url, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


@dataclass(frozen=True, slots=True)
class Measured:
    tg_max: Any
    max_max: Any
    tg_at_rate: Any
    max_at_rate: Any
    facts: dict[str, Any]


async def measure(dsn: str, updates: int, seed_: int, rate: float) -> Measured:
    url = await create_database(dsn)
    failures = tg.Failures()
    logging.getLogger().addHandler(failures)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE),
        "--serve-fake",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        if child.stdout is None or child.stdin is None:
            raise BenchError("the fake's process has no pipes")
        fake_url = (await child.stdout.readline()).decode().strip()
        await db.init_orm(url, pool_size=tg.WORKERS)
        try:
            await db.migrate()
            rng = random.Random(seed_)
            people, tg_staff, max_people, max_staff = await seed()
            codes = {p.id: code for p, code in people}
            max_codes = [(u, codes[u.user_id - MAX_ID + 1_000_000]) for u in max_people]
            jobs, redeems = tg.make_jobs(rng, people, updates)
            warmup, warm_redeems = tg.make_jobs(rng, people, WARMUP)
            by_tg = {p.id: u for p, u in zip([p for p, _c in people], max_people, strict=True)}

            def as_max(batch: list[Any]) -> list[Any]:
                return [tg.Job(j.kind, by_tg[j.person.id], j.code, j.amount) for j in batch]

            session = tg.BenchSession()
            bot = Bot(TOKEN, session=session)
            max_client = BenchMaxClient(MAX_TOKEN, fake_url)
            notifier = RoutingNotifier(
                Outbound({"telegram": TelegramChannel(bot), "max": MaxChannel(max_client)}),
                LoggingNotifier(),
            )
            dialog = Dialog(notifier)
            telegram = tg.Runner(build_dispatcher(dialog), bot, session, tg_staff)
            maxbot = MaxRunner(MaxBot(max_client, dialog, MAX_TOKEN), max_client, max_staff)

            for person in [p for p, _code in people] + tg_staff:
                await telegram.feed(person.says("/start salon-555"))
            for user in [u for u, _code in max_codes] + max_staff:
                await maxbot.feed(user.starts("salon-555"))
            await telegram.saturate(warmup)
            await maxbot.saturate(as_max(warmup))
            gc.freeze()
            measured = []
            silent = 0
            for runner, batch, how in (
                (telegram, jobs, "max"),
                (maxbot, as_max(jobs), "max"),
                (telegram, jobs, "rate"),
                (maxbot, as_max(jobs), "rate"),
            ):
                result = await (
                    runner.saturate(batch) if how == "max" else runner.at_rate(batch, rate)
                )
                silent += runner.silent
                measured.append(result)
            await max_client.aclose()

            debited = await LedgerEntry.filter(kind=LedgerKind.REDEMPTION).count()
            expected = 4 * redeems + 2 * warm_redeems
            problems = []
            if failures.records:
                problems.append(f"{len(failures.records)} error(s): {failures.records[0].msg}")
            if silent:
                problems.append(f"{silent} update(s) got no answer")
            if debited != expected:
                problems.append(f"{debited} redemptions for {expected} confirms")
            if await ledger.reconcile():
                problems.append("the ledger does not reconcile")
            if problems:
                raise BenchError("; ".join(problems))
            facts = {
                "postgres": await server_version(url),
                "mix": {kind: sum(1 for j in jobs if j.kind == kind) for kind, _ in tg.MIX},
                "rate": rate,
            }
        finally:
            await db.close_orm()
        return Measured(*measured, facts=facts)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        await child.wait()
        logging.getLogger().removeHandler(failures)
        await drop_database(dsn, url)


def report(m: Measured) -> bool:
    facts = m.facts
    print(f"PostgreSQL {facts['postgres']}; mix (jobs; a redeem is 2 updates): {facts['mix']}")
    print(f"{'side':<9} {'load':<24} {'updates':>8} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    rows = (
        ("telegram", f"as fast as it goes ({tg.WORKERS})", m.tg_max),
        ("max", f"as fast as it goes ({tg.WORKERS})", m.max_max),
        ("telegram", f"{facts['rate']:.0f} updates/s offered", m.tg_at_rate),
        ("max", f"{facts['rate']:.0f} updates/s offered", m.max_at_rate),
    )
    for side, load, r in rows:
        print(
            f"{side:<9} {load:<24} {r.updates:>8,} {r.rate:>10,.0f} "
            f"{r.p(0.50):>8.2f} {r.p(0.99):>8.2f}"
        )
    ratio = m.max_max.rate / m.tg_max.rate
    p99 = m.max_at_rate.p(0.99)
    ok = ratio >= 1.0 and p99 < GOAL_P99_MS
    print(
        f"goal: MAX ≥ Telegram's updates/s and p99 < {GOAL_P99_MS:.0f} ms at "
        f"{facts['rate']:.0f} updates/s — {'PASS' if ok else 'MISS'} "
        f"(MAX {m.max_max.rate:,.0f} updates/s at most, {ratio:.0%} of Telegram's; "
        f"p99 {p99:.2f} ms)"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--updates", type=int, default=UPDATES)
    parser.add_argument("--rate", type=float, default=GOAL_RATE, help="offered updates/s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake())
        return 0
    require_local(args.dsn)
    logging.basicConfig(level=logging.WARNING)
    timezone.localtime()
    try:
        measured = asyncio.run(measure(args.dsn, args.updates, args.seed, args.rate))
    except BenchError as exc:
        print(f"bench/max.py: {exc}", file=sys.stderr)
        return 2
    ok = report(measured)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
