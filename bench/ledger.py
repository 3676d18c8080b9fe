"""Throughput of the bonus ledger's redeem against bare asyncpg UPDATEs, on PostgreSQL.

Run from the project root:

    .venv/bin/python bench/ledger.py [--dsn postgres://postgres@127.0.0.1:5432/test] [--check]

A fresh database (salonbot_bench_<random>) is created on the server of `--dsn`, migrated with
the real migrations, seeded with 1,000 clients and dropped at the end, even on failure. Two
cases, each run by 32 asyncio workers pulling operations from one shared iterator:

* spread: 10,000 redeems spread over the 1,000 clients;
* hot: 2,000 redeems on one client (every operation waits for the same row lock).

Each case is measured through `core.ledger.redeem` (a transaction: conditional UPDATE plus the
entry INSERT) and, as the baseline, through one bare conditional UPDATE per operation on an
asyncpg pool of the same size. Rounds alternate which of the two goes first; balances are
re-seeded before every measurement and the median of the rounds is reported. After every ledger
run the ledger must reconcile and no balance may be negative, else the run fails (exit 2).
With `--check` the exit code is 1 when the ledger reaches less than 40% of the baseline's
throughput on the spread case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_DSN,
    BenchError,
    create_database,
    drop_database,
    percentile,
    require_local,
    run_main,
    server_version,
)

from core import db, ledger
from core.clients import create_client
from core.models import Company

CLIENTS = 1_000
SPREAD_OPS = 10_000
HOT_OPS = 2_000
WORKERS = 32
SEED_BALANCE = 10_000_000
GOAL = 0.40  # ledger throughput / baseline throughput on the spread case
BASELINE_SQL = "UPDATE client SET balance = balance - $1 WHERE id = $2 AND balance >= $1"

Op = tuple[int, int]  # (client_id, amount)


@dataclass(frozen=True, slots=True)
class Run:
    ops_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class Summary:
    case: str
    ops: int
    baseline: Run
    ledger: Run

    @property
    def ratio(self) -> float:
        return self.ledger.ops_per_s / self.baseline.ops_per_s


async def measure(
    ops: Sequence[Op], call: Callable[[Op], Awaitable[None]], *, workers: int, time_limit: float
) -> Run:
    """Run `ops` through `call` with `workers` tasks sharing one iterator."""
    pending = iter(ops)  # one event loop: next() is never interleaved
    latencies: list[float] = []

    async def worker() -> None:
        for op in pending:  # bounded by len(ops)
            started = time.perf_counter()
            await call(op)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    try:
        async with asyncio.timeout(time_limit):
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
    except TimeoutError:
        raise BenchError(f"a measurement took longer than {time_limit:g}s") from None
    except ExceptionGroup as group_error:
        first = group_error.exceptions[0]
        raise BenchError(f"an operation failed: {first!r}") from first
    elapsed = time.perf_counter() - started
    if len(latencies) != len(ops):
        raise BenchError(f"{len(latencies)} of {len(ops)} operations finished")
    latencies.sort()
    return Run(
        ops_per_s=len(ops) / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )


def median_run(runs: Sequence[Run]) -> Run:
    return Run(
        ops_per_s=statistics.median(r.ops_per_s for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
    )


class Bench:
    def __init__(
        self, pool: asyncpg.Pool, client_ids: list[int], *, seed: int, time_limit: float
    ) -> None:
        self.pool = pool
        self.time_limit = time_limit
        self.client_ids = client_ids
        self.rng = random.Random(seed)
        self.run_no = 0

    def spread_ops(self, count: int) -> list[Op]:
        ids = [self.client_ids[i % len(self.client_ids)] for i in range(count)]
        self.rng.shuffle(ids)
        return [(client_id, self.rng.randint(1, 50)) for client_id in ids]

    def hot_ops(self, count: int) -> list[Op]:
        client_id = self.client_ids[0]
        return [(client_id, self.rng.randint(1, 50)) for _ in range(count)]

    async def reseed(self) -> None:
        """Every client back to SEED_BALANCE with one matching accrual; a clean, quiet server."""
        async with self.pool.acquire() as conn:
            await conn.execute("TRUNCATE ledger_entry RESTART IDENTITY")
            await conn.execute("UPDATE client SET balance = $1", SEED_BALANCE)
            await conn.execute(
                "INSERT INTO ledger_entry (company_id, client_id, kind, amount, balance_after,"
                " idempotency_key, reason, created_at)"
                " SELECT company_id, id, 'accrual', $1, $1, 'seed:' || id, 'bench seed', now()"
                " FROM client",
                SEED_BALANCE,
            )
            await conn.execute("VACUUM ANALYZE client")
            await conn.execute("VACUUM ANALYZE ledger_entry")
            await conn.execute("CHECKPOINT")

    async def verify_ledger(self, ops: Sequence[Op]) -> None:
        mismatches = await ledger.reconcile()
        if mismatches:
            raise BenchError(f"ledger does not reconcile: {mismatches[:5]}")
        async with self.pool.acquire() as conn:
            negative = await conn.fetchval("SELECT count(*) FROM client WHERE balance < 0")
            entries = await conn.fetchval(
                "SELECT count(*) FROM ledger_entry WHERE kind = 'redemption'"
            )
            debited = await conn.fetchval(
                "SELECT $1::bigint * count(*) - sum(balance) FROM client", SEED_BALANCE
            )
        if negative:
            raise BenchError(f"{negative} clients have a negative balance")
        if entries != len(ops):
            raise BenchError(f"{entries} redemption entries for {len(ops)} redeems")
        if debited != sum(amount for _, amount in ops):
            raise BenchError(f"balances moved by {debited}, expected {sum(a for _, a in ops)}")

    async def run_baseline(self, ops: Sequence[Op]) -> Run:
        await self.reseed()

        async def call(op: Op) -> None:
            client_id, amount = op
            status = await self.pool.execute(BASELINE_SQL, amount, client_id)
            if status != "UPDATE 1":
                raise BenchError(f"baseline update refused: {status}")

        return await measure(ops, call, workers=WORKERS, time_limit=self.time_limit)

    async def run_ledger(self, ops: Sequence[Op]) -> Run:
        await self.reseed()
        self.run_no += 1
        prefix = f"bench:{self.run_no}:"
        keys = iter(range(len(ops)))

        async def call(op: Op) -> None:
            client_id, amount = op
            result = await ledger.redeem(client_id, amount, f"{prefix}{next(keys)}")
            if not result.created:
                raise BenchError("a fresh key was replayed")

        run = await measure(ops, call, workers=WORKERS, time_limit=self.time_limit)
        await self.verify_ledger(ops)
        return run

    async def case(self, name: str, ops: Sequence[Op], rounds: int) -> Summary:
        baselines: list[Run] = []
        ledgers: list[Run] = []
        for r in range(rounds):
            order = ("baseline", "ledger") if r % 2 == 0 else ("ledger", "baseline")
            for which in order:
                if which == "baseline":
                    run = await self.run_baseline(ops)
                    baselines.append(run)
                else:
                    run = await self.run_ledger(ops)
                    ledgers.append(run)
                print(
                    f"  {name:6} round {r + 1} {which:8} {run.ops_per_s:9.0f} ops/s"
                    f"  p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms",
                    flush=True,
                )
        return Summary(name, len(ops), median_run(baselines), median_run(ledgers))

    async def warm_up(self) -> None:
        """Open every pooled connection on both sides and warm the caches; not measured."""
        ops = self.spread_ops(WORKERS * 20)
        await self.run_baseline(ops)
        await self.run_ledger(ops)


async def seed_clients(count: int) -> list[int]:
    company = await Company.create(yclients_id=1, hook_token=secrets.token_hex(8), title="bench")
    ids: list[int] = []
    for i in range(count):
        new = await create_client(company, phone=f"+7999{i:07d}", name=f"bench {i}")
        ids.append(new.client.id)
    return ids


def print_table(summaries: Sequence[Summary], rounds: int) -> None:
    print()
    print(f"median of {rounds} rounds, {WORKERS} workers, pool size {WORKERS}")
    header = (
        f"{'case':6} {'ops':>6} {'side':8} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for s in summaries:
        for side, run in (("baseline", s.baseline), ("ledger", s.ledger)):
            ratio = f"{s.ratio:7.1%}" if side == "ledger" else ""
            print(
                f"{s.case:6} {s.ops:6} {side:8} {run.ops_per_s:9.0f} {run.p50_ms:8.2f}"
                f" {run.p99_ms:8.2f} {ratio:>7}"
            )


async def main(args: argparse.Namespace) -> int:
    require_local(args.dsn)
    try:
        url = await create_database(args.dsn)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BenchError(f"cannot create the bench database on {args.dsn}: {exc}") from None
    pool: asyncpg.Pool | None = None
    orm_open = False
    try:
        print(f"database {url.rsplit('/', 1)[1]} (PostgreSQL {await server_version(url)})")
        print(f"nproc {os.cpu_count()}, python {sys.version.split()[0]}")
        await db.init_orm(url, pool_size=WORKERS)
        orm_open = True
        await db.migrate()
        started = time.perf_counter()
        client_ids = await seed_clients(CLIENTS)
        print(f"seeded {len(client_ids)} clients in {time.perf_counter() - started:.1f}s")
        pool = await asyncpg.create_pool(url, min_size=WORKERS, max_size=WORKERS, timeout=5)
        bench = Bench(pool, client_ids, seed=args.seed, time_limit=args.timeout)
        await bench.warm_up()
        summaries = [
            await bench.case("spread", bench.spread_ops(SPREAD_OPS), args.rounds),
            await bench.case("hot", bench.hot_ops(HOT_OPS), args.rounds),
        ]
    finally:
        if pool is not None:
            await pool.close()
        if orm_open:
            await db.close_orm()
        await drop_database(args.dsn, url)
    print_table(summaries, args.rounds)
    spread = summaries[0]
    passed = spread.ratio >= GOAL
    verdict = "PASS" if passed else "FAIL"
    print(f"\ngoal: ledger >= {GOAL:.0%} of baseline on spread: {spread.ratio:.1%} {verdict}")
    return 1 if args.check and not passed else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="admin DSN on 127.0.0.1")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--timeout", type=float, default=300.0, help="per measurement, seconds")
    parser.add_argument("--seed", type=int, default=1, help="seed of the operation mix")
    return parser.parse_args(argv)


if __name__ == "__main__":
    run_main(main(parse_args()), "database dropped")
