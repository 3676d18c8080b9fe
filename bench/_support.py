"""What bench/sync.py and bench/webhooks.py share: the throw-away database, the local-host
guard, percentiles, medians, and realistic YClients records.

Not a benchmark itself. The scripts put `bench/` on `sys.path` (Python does that for the
script's own directory) and import this as `_support`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import secrets
import signal
import socket
import statistics
import sys
import time
from collections.abc import Coroutine, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

DEFAULT_DSN = "postgres://postgres@127.0.0.1:5432/test"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TZ = "Europe/Moscow"
CHANGE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # `2026-11-20T12:00:00+0300`, as YClients sends it

# What the records carry: services at these prices (roubles), masters by these names.
SERVICES = (
    ("Стрижка", 1500),
    ("Окрашивание", 4500),
    ("Маникюр", 1800),
    ("Педикюр", 2200),
    ("Укладка", 1200),
    ("Брови", 900),
)
MASTERS = ("Мария", "Ольга", "Светлана", "Анна", "Екатерина")
FIRST_NAMES = ("Анна", "Мария", "Елена", "Ольга", "Наталья", "Ирина", "Дарья", "Юлия")


class BenchError(Exception):
    """The benchmark itself went wrong (a request failed, the data does not add up)."""


def run_main(main: Coroutine[Any, Any, int], cleaned_up: str) -> NoReturn:
    """Run a benchmark's `main` and exit with its code: 2 when the run itself failed, 130 when
    it was stopped; `cleaned_up` says what its `finally` has undone by then."""
    try:
        sys.exit(asyncio.run(main))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(2)
    except (asyncio.CancelledError, KeyboardInterrupt):
        print(f"benchmark stopped; {cleaned_up}", file=sys.stderr)
        sys.exit(130)


def require_local(dsn: str) -> None:
    host = urlsplit(dsn).hostname or ""
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"refusing a non-local PostgreSQL host: {host!r}")


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP cancel the run like Ctrl-C does, so its `finally` still stops the
    servers and drops the database (only a SIGKILL leaves them behind)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is None:
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)


def load_text() -> str:
    """The 1/5/15-minute load averages: another busy process skews every figure."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


async def create_database(admin_dsn: str) -> str:
    name = f"salonbot_bench_{os.getpid()}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_dsn, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{admin_dsn.rsplit('/', 1)[0]}/{name}"


async def drop_database(admin_dsn: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin_dsn, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def phone_for(i: int) -> str:
    """A valid Russian mobile number, as YClients sends it (digits, no plus)."""
    return f"7999{i:07d}"


def make_records(
    company_id: int,
    count: int,
    *,
    phones: int,
    seed: int,
    now: datetime,
    first_id: int = 1,
) -> list[dict[str, Any]]:
    """`count` records of one salon shaped as the YClients API returns them.

    Visits spread over 85 days either side of `now`, clients drawn from `phones` distinct
    numbers (each with its own YClients client id, name and, for a third, an e-mail). A past
    visit came (attendance 1, 80%), did not (-1, 10%) or was deleted (10%); a future one is
    pending (0, 70%), confirmed (2, 25%) or deleted (5%). One to three services each.
    """
    rng = random.Random(seed)
    tz = ZoneInfo(TZ)
    local_now = now.astimezone(tz).replace(microsecond=0)
    records: list[dict[str, Any]] = []
    for n in range(count):
        record_id = first_id + n
        who = rng.randrange(phones)
        day = rng.randint(-85, 85)
        when = (local_now + timedelta(days=day)).replace(
            hour=rng.randint(9, 20), minute=rng.choice((0, 15, 30, 45)), second=0
        )
        roll = rng.random()
        deleted = False
        if day < 0:
            attendance = 1 if roll < 0.8 else -1 if roll < 0.9 else 0
            deleted = roll >= 0.9
        else:
            attendance = 0 if roll < 0.7 else 2 if roll < 0.95 else 0
            deleted = roll >= 0.95
        changed = min(local_now, when + timedelta(hours=1)) - timedelta(minutes=rng.randint(0, 600))
        lines = []
        for k in range(rng.choice((1, 1, 2, 3))):
            title, price = SERVICES[rng.randrange(len(SERVICES))]
            discount = rng.choice((0, 0, 0, 10))
            lines.append(
                {
                    "id": 100 + k,
                    "title": title,
                    "cost": price * (100 - discount) // 100,
                    "first_cost": price,
                    "discount": discount,
                    "amount": 1,
                }
            )
        master = MASTERS[record_id % len(MASTERS)]
        records.append(
            {
                "id": record_id,
                "company_id": company_id,
                "staff_id": 10 + record_id % len(MASTERS),
                "staff": {"id": 10 + record_id % len(MASTERS), "name": master},
                "services": lines,
                "client": {
                    "id": 500_000 + who,
                    "name": f"{FIRST_NAMES[who % len(FIRST_NAMES)]} {who}",
                    "phone": phone_for(who),
                    "email": f"client{who}@example.ru" if who % 3 == 0 else "",
                },
                "datetime": when.isoformat(),
                "date": when.strftime("%Y-%m-%d %H:%M:%S"),
                "seance_length": 3600,
                "length": 3600,
                "comment": "",
                "attendance": attendance,
                "visit_attendance": attendance,
                "deleted": deleted,
                "paid_full": 1 if attendance == 1 else 0,
                "online": rng.random() < 0.4,
                "create_date": (changed - timedelta(days=3)).strftime(CHANGE_FORMAT),
                "last_change_date": changed.strftime(CHANGE_FORMAT),
                "api_id": "",
            }
        )
    return records


def expected_bonuses(records: Sequence[dict[str, Any]], accrual_percent: int) -> dict[str, int]:
    """What applying these records must leave: accruals and the points they carry."""
    awarded = 0
    points = 0
    for record in records:
        if record["deleted"] or record["attendance"] != 1:
            continue
        value = max(0, round(sum(float(line["cost"]) for line in record["services"])))
        earned = value * accrual_percent // 100
        if earned > 0:
            awarded += 1
            points += earned
    return {"awarded": awarded, "points": points}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of a process, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


class Child:
    """A child process on 127.0.0.1: started, waited for, and always stopped. It runs in
    `cwd` (default: its log's folder, so no `.env` of the repo is read)."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
    ) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log
        self.cwd = cwd or log.parent
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, ready_url: str | None = None, *, within: float = 60.0) -> None:
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if ready_url is not None:
            await self.wait_http(ready_url, within)

    async def wait_http(self, url: str, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.returncode is not None:
                    break
                try:
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status < 500:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)
        raise BenchError(f"{self.name} did not come up; its log:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
