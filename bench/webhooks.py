"""YClients webhook ingest into a real `salonbot serve`, against a bare aiohttp + asyncpg
baseline, and how fast the inbox worker drains what came in.

Run from the project root:

    .venv/bin/python bench/webhooks.py [--dsn postgres://postgres@127.0.0.1:5432/test] [--check]

A fresh database (salonbot_bench_<random>) is created on the server of `--dsn`, migrated with
the real migrations, given one active salon with a hook token, and dropped at the end, even on
failure. Two server processes on 127.0.0.1 share it:

* `salonbot serve` (the installed console script) with DATABASE_URL, SECRET_KEY, HTTP_PORT
  and YClients settings pointing at the test suite's emulator (the webhook path never calls
  it; the scheduled sync is moved to 1 January so it cannot fire during the run), its inbox
  worker running as in production;
* bench/baseline_server.py: one route that stores the body with one asyncpg INSERT.

Each round builds 20,000 distinct record events (YClients' JSON: company_id, resource,
resource_id, status, data = the record) and POSTs them with 64 concurrent connections
(one aiohttp session, connector limit 64) to each server, alternating which goes first.

* ingest: requests/s over the wall time, p50/p99 latency of each request;
* drain: from the last HTTP 200 of salonbot's ingest until every event of the round is done
  (inbox_event counts polled every 50 ms): the events still pending at that moment over
  that time, events/s. Then the round is checked: a booking per record, one accrual per
  attended visit, the ledger reconciling, no event failed.

Goals: salonbot's ingest >= 60% of the baseline's requests/s with p99 < 50 ms; drain >=
1,000 events/s. With `--check` a miss exits 1 (2 when the run itself failed).
Before the rounds, a second `salonbot serve` without any YClients setting takes a few
webhooks, to show the endpoint and the worker do not need the YClients client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_DSN,
    TZ,
    BenchError,
    Child,
    create_database,
    drop_database,
    expected_bonuses,
    free_port,
    load_text,
    make_records,
    median,
    percentile,
    process_cpu,
    require_local,
    run_main,
    server_version,
    stop_on_signals,
)

from core import db
from core.models import Company, IntegrationStatus
from tests.fakes.yclients import PARTNER_TOKEN, USER_TOKEN, YClientsEmulator

COMPANY = 777
HOOK_TOKEN = "bench-hook-" + secrets.token_hex(8)
EVENTS = 20_000
PHONES = 5_000
CONNECTIONS = 64
ACCRUAL_PERCENT = 5
WARM_UP = 640
POLL_S = 0.05
GOAL_RATIO = 0.60
GOAL_P99_MS = 50.0
GOAL_DRAIN = 1_000.0
ROOT = Path(__file__).resolve().parents[1]
SALONBOT = Path(sys.executable).with_name("salonbot")
BASELINE = Path(__file__).resolve().with_name("baseline_server.py")


@dataclass(frozen=True, slots=True)
class Ingest:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    last_ok_at: float  # perf_counter of the last 200
    # CPU time per request, µs: the server process, PostgreSQL's backends of the bench
    # database, this client; None where /proc cannot tell.
    cpu_us: tuple[float | None, float | None, float]

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True, slots=True)
class Drain:
    pending_at_last_ok: int
    seconds: float
    total_s: float  # from the first request to the last event done

    @property
    def per_s(self) -> float:
        return self.pending_at_last_ok / self.seconds if self.seconds > 0 else float("inf")


def cpu_text(run: Ingest) -> str:
    server, postgres, client = run.cpu_us

    def us(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f} µs"

    return f"server {us(server)}, postgres {us(postgres)}, client {us(client)}"


def payloads(first_id: int, count: int, seed: int) -> list[bytes]:
    records = make_records(
        COMPANY, count, phones=PHONES, seed=seed, now=datetime.now(UTC), first_id=first_id
    )
    return [
        json.dumps(
            {
                "company_id": COMPANY,
                "resource": "record",
                "resource_id": r["id"],
                "status": "create",
                "data": r,
            },
            ensure_ascii=False,
        ).encode()
        for r in records
    ]


def backends_cpu(database: str) -> float | None:
    """CPU seconds of the PostgreSQL backends connected to `database` (same machine only)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    total = 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            total += process_cpu(int(entry.name)) or 0.0
    return total


def _delta(after: float | None, before: float | None, count: int) -> float | None:
    if after is None or before is None:
        return None
    return (after - before) / count * 1e6


async def post_all(
    url: str,
    bodies: Sequence[bytes],
    *,
    expect_new: bool,
    time_limit: float,
    server_pid: int | None = None,
    database: str = "",
) -> Ingest:
    """POST every body through CONNECTIONS workers sharing one iterator; every answer 200."""
    cpu_before = (
        process_cpu(server_pid) if server_pid else None,
        backends_cpu(database) if database else None,
        time.process_time(),
    )
    pending = iter(bodies)
    latencies: list[float] = []
    last_ok = 0.0
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def worker() -> None:
            nonlocal last_ok
            for body in pending:  # bounded by len(bodies)
                started = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                    if response.status != 200:
                        raise BenchError(f"HTTP {response.status}: {answer[:200]!r}")
                    if expect_new and b'"duplicate": false' not in answer:
                        raise BenchError(f"not stored as new: {answer[:200]!r}")
                last_ok = time.perf_counter()
                latencies.append(last_ok - started)

        started = time.perf_counter()
        try:
            async with asyncio.timeout(time_limit):
                async with asyncio.TaskGroup() as group:
                    for _ in range(CONNECTIONS):
                        group.create_task(worker())
        except TimeoutError:
            raise BenchError(f"ingest took longer than {time_limit:g}s") from None
        except ExceptionGroup as errors:
            first = errors.exceptions[0]
            raise BenchError(f"a request failed: {first!r}") from first
        elapsed = last_ok - started
    if len(latencies) != len(bodies):
        raise BenchError(f"{len(latencies)} of {len(bodies)} requests finished")
    count = len(bodies)
    cpu_us = (
        _delta(process_cpu(server_pid) if server_pid else None, cpu_before[0], count),
        _delta(backends_cpu(database) if database else None, cpu_before[1], count),
        (time.process_time() - cpu_before[2]) / count * 1e6,
    )
    latencies.sort()
    return Ingest(
        count,
        elapsed,
        percentile(latencies, 0.50) * 1000,
        percentile(latencies, 0.99) * 1000,
        last_ok,
        cpu_us,
    )


async def pending_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM inbox_event WHERE status = 'pending'"))


async def any_pending(pool: asyncpg.Pool) -> bool:
    # EXISTS stops at the first row: polling must not load the server it measures.
    return bool(
        await pool.fetchval("SELECT EXISTS (SELECT 1 FROM inbox_event WHERE status = 'pending')")
    )


async def wait_drained(
    pool: asyncpg.Pool, total: int, ingest: Ingest, started: float, *, time_limit: float
) -> Drain:
    """Poll until no event is pending; time it from the ingest's last 200. Then `total`
    events must be done and none dead (a failed event stays pending for its retry, so a
    failure shows as a drain that never ends)."""
    pending_then = await pending_count(pool)
    deadline = time.monotonic() + time_limit
    while await any_pending(pool):
        if time.monotonic() > deadline:
            left = await pending_count(pool)
            raise BenchError(f"the inbox did not drain within {time_limit:g}s: {left} pending")
        await asyncio.sleep(POLL_S)
    finished = time.perf_counter()
    rows = await pool.fetch("SELECT status, count(*) AS n FROM inbox_event GROUP BY status")
    counts = {row["status"]: int(row["n"]) for row in rows}
    if counts.get("dead", 0) or counts.get("done", 0) != total:
        raise BenchError(f"after the drain, {counts}; expected {total} done")
    return Drain(pending_then, finished - ingest.last_ok_at, finished - started)


async def verify_round(pool: asyncpg.Pool, bodies: Sequence[bytes], first_id: int) -> None:
    records = [json.loads(b)["data"] for b in bodies]
    expected = expected_bonuses(records, ACCRUAL_PERCENT)
    last_id = first_id + len(records) - 1
    bookings = await pool.fetchval(
        "SELECT count(*) FROM booking WHERE yclients_record_id BETWEEN $1 AND $2",
        first_id,
        last_id,
    )
    accruals, points = await pool.fetchrow(
        "SELECT count(*), coalesce(sum(e.amount), 0) FROM ledger_entry e"
        " JOIN booking b ON b.id = e.booking_id"
        " WHERE e.kind = 'accrual' AND b.yclients_record_id BETWEEN $1 AND $2",
        first_id,
        last_id,
    )
    mismatched = await pool.fetchval(
        "SELECT count(*) FROM client c WHERE c.balance <>"
        " (SELECT coalesce(sum(amount), 0) FROM ledger_entry e WHERE e.client_id = c.id)"
    )
    errors = await pool.fetchval("SELECT count(*) FROM inbox_event WHERE last_error IS NOT NULL")
    problems = []
    if bookings != len(records):
        problems.append(f"{bookings} bookings for {len(records)} records")
    if (accruals, points) != (expected["awarded"], expected["points"]):
        problems.append(
            f"{accruals} accruals of {points} points, expected {expected['awarded']}"
            f" of {expected['points']}"
        )
    if mismatched:
        problems.append(f"{mismatched} clients' balances do not match their ledger")
    if errors:
        problems.append(f"{errors} inbox events failed at least once")
    if problems:
        raise BenchError("; ".join(problems))


def serve_env(url: str, port: int, data_dir: Path, yclients_url: str | None) -> dict[str, str]:
    """The process environment without this shell's salonbot settings, plus the bench's."""
    prefixes = ("TELEGRAM_", "YCLIENTS_", "WHATSAPP_", "MARKETPLACE_", "SALONBOT_")
    names = {"DATABASE_URL", "SECRET_KEY", "PUBLIC_BASE_URL", "REDIS_URL", "HTTP_HOST"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in names}
    env |= {
        "ENVIRONMENT": "production",
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_hex(32),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "console",
    }
    if yclients_url is not None:
        env |= {
            "YCLIENTS_API_URL": yclients_url,
            "YCLIENTS_PARTNER_TOKEN": PARTNER_TOKEN,
            "YCLIENTS_USER_TOKEN": USER_TOKEN,
            # The scheduled sync must not fire during the run.
            "YCLIENTS_SYNC_CRON": "0 0 1 1 *",
        }
    return env


async def check_without_yclients(url: str, pool: asyncpg.Pool, work: Path, first_id: int) -> int:
    """A `salonbot serve` with no YClients settings stores and processes webhooks too."""
    port = free_port()
    server = Child(
        "salonbot serve (no YClients)",
        [str(SALONBOT), "serve"],
        serve_env(url, port, work / "data-plain", None),
        work / "serve-plain.log",
    )
    bodies = payloads(first_id, 50, seed=99)
    try:
        await server.start(f"http://127.0.0.1:{port}/health")
        hook = f"http://127.0.0.1:{port}/webhook/yclients/{HOOK_TOKEN}"
        ingest = await post_all(hook, bodies, expect_new=True, time_limit=60)
        await wait_drained(pool, len(bodies), ingest, time.perf_counter(), time_limit=60)
        await verify_round(pool, bodies, first_id)
    finally:
        await server.stop()
    if "yclients off" not in server.log_path.read_text(errors="replace").lower():
        print("  (note: the log does not say the YClients part is off)")
    return len(bodies)


async def main(args: argparse.Namespace) -> int:
    require_local(args.dsn)
    stop_on_signals()
    try:
        url = await create_database(args.dsn)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BenchError(f"cannot create the bench database on {args.dsn}: {exc}") from None
    servers: list[Child] = []
    pool: asyncpg.Pool | None = None
    emulator: YClientsEmulator | None = None
    ours: list[tuple[Ingest, Drain]] = []
    theirs: list[Ingest] = []
    # The servers' logs; removed after a good run, kept (and named) after a failed one.
    work = Path(tempfile.mkdtemp(prefix="salonbot-bench-"))
    try:
        print(f"database {url.rsplit('/', 1)[1]} (PostgreSQL {await server_version(url)})")
        print(f"nproc {os.cpu_count()}, python {sys.version.split()[0]}, load {load_text()}")
        await db.init_orm(url)
        try:
            await db.migrate()
            await Company.create(
                yclients_id=COMPANY,
                hook_token=HOOK_TOKEN,
                title="bench",
                timezone=TZ,
                accrual_percent=ACCRUAL_PERCENT,
                integration_status=IntegrationStatus.ACTIVE,
            )
        finally:
            await db.close_orm()
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2, timeout=5)
        emulator = await YClientsEmulator().start()
        emulator.add_company(COMPANY, title="bench", timezone_name=TZ)
        next_id = 10_000_000

        print("\nwithout YClients settings: ", end="", flush=True)
        checked = await check_without_yclients(url, pool, work, next_id)
        next_id += checked
        print(f"{checked} webhooks stored and processed OK")

        serve_port, base_port = free_port(), free_port()
        serve = Child(
            "salonbot serve",
            [str(SALONBOT), "serve"],
            serve_env(url, serve_port, work / "data", emulator.url),
            work / "serve.log",
        )
        servers.append(serve)
        baseline = Child(
            "baseline server",
            [sys.executable, str(BASELINE), "--dsn", url, "--port", str(base_port)],
            serve_env(url, base_port, work / "data", None),
            work / "baseline.log",
        )
        servers.append(baseline)
        await serve.start(f"http://127.0.0.1:{serve_port}/health")
        await baseline.start(f"http://127.0.0.1:{base_port}/webhook/ready")
        serve_url = f"http://127.0.0.1:{serve_port}/webhook/yclients/{HOOK_TOKEN}"
        base_url = f"http://127.0.0.1:{base_port}/webhook/{HOOK_TOKEN}"
        database = url.rsplit("/", 1)[1]
        assert serve.proc is not None and baseline.proc is not None

        # Warm-up, not measured: every connection opened, both pools filled, caches warm.
        warm = payloads(next_id, WARM_UP, seed=7)
        started = time.perf_counter()
        ingest = await post_all(serve_url, warm, expect_new=True, time_limit=args.timeout)
        await wait_drained(pool, checked + len(warm), ingest, started, time_limit=args.timeout)
        await post_all(base_url, warm, expect_new=False, time_limit=args.timeout)
        next_id += len(warm)
        done_so_far = checked + len(warm)

        print(f"\n{args.events:,} record webhooks per round, {CONNECTIONS} connections")
        for r in range(args.rounds):
            bodies = payloads(next_id, args.events, seed=args.seed + r)
            first_id = next_id
            next_id += args.events
            async with pool.acquire() as conn:
                await conn.execute("VACUUM ANALYZE")
                await conn.execute("CHECKPOINT")
            order = ("salonbot", "baseline") if r % 2 == 0 else ("baseline", "salonbot")
            for side in order:
                if side == "baseline":
                    run = await post_all(
                        base_url,
                        bodies,
                        expect_new=False,
                        time_limit=args.timeout,
                        server_pid=baseline.proc.pid,
                        database=database,
                    )
                    theirs.append(run)
                    print(
                        f"  round {r + 1} baseline  {run.per_s:7.0f} req/s"
                        f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
                        f"  | CPU/request {cpu_text(run)}",
                        flush=True,
                    )
                    continue
                started = time.perf_counter()
                run = await post_all(
                    serve_url,
                    bodies,
                    expect_new=True,
                    time_limit=args.timeout,
                    server_pid=serve.proc.pid,
                    database=database,
                )
                done_so_far += len(bodies)
                drain = await wait_drained(pool, done_so_far, run, started, time_limit=args.timeout)
                ours.append((run, drain))
                print(
                    f"  round {r + 1} salonbot  {run.per_s:7.0f} req/s"
                    f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
                    f"  | CPU/request {cpu_text(run)}\n"
                    f"          drain: {drain.pending_at_last_ok:,} pending at the last 200,"
                    f" done {drain.seconds:.2f} s later: {drain.per_s:,.0f} events/s"
                    f" (all {len(bodies):,} done {drain.total_s:.2f} s after the first POST)",
                    flush=True,
                )
                await verify_round(pool, bodies, first_id)
    except BenchError:
        for server in servers:
            print(f"--- {server.name} log (tail) ---\n{server.tail()}", file=sys.stderr)
        print(f"the servers' logs are kept in {work}", file=sys.stderr)
        raise
    finally:
        for server in servers:
            await server.stop()
        if emulator is not None:
            await emulator.close()
        if pool is not None:
            await pool.close()
        await drop_database(args.dsn, url)
    shutil.rmtree(work, ignore_errors=True)

    print(f"load average at the end: {load_text()}")
    ingest_s = median([i.per_s for i, _ in ours])
    base_s = median([b.per_s for b in theirs])
    p50 = median([i.p50_ms for i, _ in ours])
    p99 = median([i.p99_ms for i, _ in ours])
    drain_s = median([d.per_s for _, d in ours])
    ratio = ingest_s / base_s
    print(f"\nmedian of {args.rounds} rounds, {args.events:,} webhooks, {CONNECTIONS} connections")
    print(f"{'side':9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    print(
        f"{'baseline':9} {base_s:8.0f} {median([b.p50_ms for b in theirs]):8.2f}"
        f" {median([b.p99_ms for b in theirs]):8.2f}"
    )
    print(f"{'salonbot':9} {ingest_s:8.0f} {p50:8.2f} {p99:8.2f}   {ratio:.1%} of baseline")
    print(
        f"drain: {median([d.pending_at_last_ok for _, d in ours]):,.0f} events pending at the"
        f" last 200, {median([d.seconds for _, d in ours]):.2f} s to finish:"
        f" {drain_s:,.0f} events/s"
    )
    ratio_ok, p99_ok, drain_ok = ratio >= GOAL_RATIO, p99 < GOAL_P99_MS, drain_s >= GOAL_DRAIN
    print(
        f"\ngoal: ingest >= {GOAL_RATIO:.0%} of baseline: {ratio:.1%}"
        f" {'PASS' if ratio_ok else 'FAIL'}"
    )
    print(f"goal: ingest p99 < {GOAL_P99_MS:g} ms: {p99:.2f} ms {'PASS' if p99_ok else 'FAIL'}")
    print(
        f"goal: drain >= {GOAL_DRAIN:,.0f} events/s: {drain_s:,.0f}"
        f" {'PASS' if drain_ok else 'FAIL'}"
    )
    return 1 if args.check and not (ratio_ok and p99_ok and drain_ok) else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="admin DSN on 127.0.0.1")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--events", type=int, default=EVENTS, help="webhooks per round")
    parser.add_argument("--timeout", type=float, default=300.0, help="per measurement, seconds")
    parser.add_argument("--seed", type=int, default=1, help="seed of the records")
    args = parser.parse_args(argv)
    if not 100 <= args.events <= 200_000:
        parser.error("--events 100..200000")
    return args


if __name__ == "__main__":
    run_main(main(parse_args()), "servers stopped and database dropped")
