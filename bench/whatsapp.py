"""WhatsApp messages end to end: signed WAHA `message` webhooks into a real `salonbot serve`,
through the inbox and the dialog, until every answer has been handed to the WAHA emulator.

Run from the project root:

    .venv/bin/python bench/whatsapp.py [--dsn postgres://postgres@127.0.0.1:5432/test] [--check]

A fresh database (salonbot_bench_<random>) is created on the server of `--dsn`, migrated with
the real migrations, given one active salon whose WhatsApp session is linked, and 1,000 of its
clients as the YClients sync leaves them (phone, name, a balance with three ledger entries); it
is dropped at the end, even on failure. Three processes on 127.0.0.1:

* the WAHA emulator of the test suite (tests/fakes/waha.py), in a child process of this script
  so that its work does not share this one's CPU, with the salon's session WORKING;
* `salonbot serve` (the installed console script) pointed at it, with the manners that would
  slow answers on purpose off: WHATSAPP_REPLY_PAUSE=0 and WHATSAPP_SEND_RATE=0;
* this script, posting the events with 32 concurrent connections (one aiohttp session).

The events: 1,250 senders (the 1,000 known clients and 250 new numbers) write what clients
write: 30% «2» (bonuses), 20% «3» (the code: a QR image), 15% «1» (booking links), 10% «4»
(visits), 15% «привет», 10% something the bot does not understand. Every event has its own
event id and message id and is signed as WAHA signs (hex HMAC-SHA512 of the body); the
timestamp header is set when it is posted. Before the measured run, 250 events (not counted)
warm the pools and caches.

Figures:

* accept: events/s over the wall time of the posting, p50/p99 latency of each POST (stored in
  the inbox and answered 200);
* end to end: from the first POST until the emulator received the last answer; the events
  over that time are the replies/s. The run is over when the emulator has been asked to mark
  every message seen (one per event, always before its answer) and the messages it received
  equal those salonbot counts as handed over (`salonbot_whatsapp_messages_total`).

The run fails (exit 2) if a POST is refused, a message is answered twice or not at all, a
send failed, or an inbox event failed. Goals (from the issue): accept p99 < 50 ms and at least
300 replies/s end to end. With `--check` a miss exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_DSN,
    FIRST_NAMES,
    TZ,
    BenchError,
    Child,
    create_database,
    drop_database,
    free_port,
    load_text,
    percentile,
    phone_for,
    process_cpu,
    require_local,
    run_main,
    server_version,
)

from tests.fakes.waha import WORKING, FakeSession, WahaEmulator

COMPANY = 888
SESSION = f"salon-{COMPANY}"
SALON_PHONE = "79001234567"
# The emulator runs in a child process: both take the key from its environment.
API_KEY = os.environ.get("BENCH_WAHA_API_KEY") or "bench-waha-key-" + secrets.token_hex(8)
KEY = {"X-Api-Key": API_KEY}
HMAC_KEY = "bench-hmac-key-" + secrets.token_hex(16)
EVENTS = 5_000
WARM_UP = 250
KNOWN = 1_000
NEW = 250
CONNECTIONS = 32
POLL_S = 0.02
GOAL_P99_MS = 50.0
GOAL_REPLIES = 300.0
MIX = (("2", 30), ("3", 20), ("1", 15), ("4", 10), ("привет", 15), ("спасибо, до встречи", 10))
SALONBOT = Path(sys.executable).with_name("salonbot")
THIS = Path(__file__).resolve()
ROOT = THIS.parents[1]


# --- the emulator, in its own process ------------------------------------------------------------


class TimedEmulator(WahaEmulator):
    """The test suite's WAHA emulator, noting when each answer arrived, and GET /bench/stats."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.received: list[float] = []
        self.seen_ids: list[str] = []

    async def _send_text(self, request: web.Request) -> web.Response:
        response = await super()._send_text(request)
        self.received.append(time.time())
        return response

    async def _send_image(self, request: web.Request) -> web.Response:
        response = await super()._send_image(request)
        self.received.append(time.time())
        return response

    async def _send_seen(self, request: web.Request) -> web.Response:
        response = await super()._send_seen(request)
        self.seen_ids += self.seen[-1]["messageIds"]
        return response

    def _routes(self, app: web.Application) -> None:
        super()._routes(app)
        app.router.add_get("/bench/stats", self._stats)
        app.router.add_post("/bench/reset", self._reset)

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "sent": len(self.sent),
                "last_at": self.received[-1] if self.received else None,
                "seen": len(self.seen_ids),
                "seen_distinct": len(set(self.seen_ids)),
                "images": sum(1 for m in self.sent if m["type"] == "image"),
                "chats": len({m["chatId"] for m in self.sent}),
            }
        )

    async def _reset(self, request: web.Request) -> web.Response:
        for found in (self.sent, self.seen, self.calls, self.received, self.seen_ids):
            found.clear()
        return web.json_response({})


async def run_emulator(port_file: Path) -> None:
    """`--emulator`: the emulator with the salon's session linked, until SIGTERM."""
    async with TimedEmulator(api_key=API_KEY) as waha:
        waha.sessions[SESSION] = FakeSession(
            SESSION, config={}, status=WORKING, me={"id": f"{SALON_PHONE}:15@c.us"}
        )
        await asyncio.to_thread(port_file.write_text, waha.url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


# --- the processes -------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    prefixes = ("TELEGRAM_", "YCLIENTS_", "WHATSAPP_", "MARKETPLACE_", "SALONBOT_")
    names = {"DATABASE_URL", "SECRET_KEY", "PUBLIC_BASE_URL", "REDIS_URL", "HTTP_HOST"}
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in names}


def serve_env(url: str, port: int, data_dir: Path, waha_url: str) -> dict[str, str]:
    return clean_env() | {
        "ENVIRONMENT": "production",
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_hex(32),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "console",
        "WHATSAPP_GATEWAY_URL": waha_url,
        "WHATSAPP_GATEWAY_API_KEY": API_KEY,
        "WHATSAPP_WEBHOOK_HMAC_KEY": HMAC_KEY,
        "WHATSAPP_REPLY_PAUSE": "0",
        "WHATSAPP_SEND_RATE": "0",
    }


# --- data ----------------------------------------------------------------------------------------


async def seed(url: str) -> None:
    from core import db, ledger
    from core.clients import create_client
    from core.models import Company, IntegrationStatus

    await db.init_orm(url, pool_size=8)
    try:
        await db.migrate()
        company = await Company.create(
            yclients_id=COMPANY,
            hook_token="bench-" + secrets.token_hex(8),
            title="Салон «Бенч»",
            timezone=TZ,
            integration_status=IntegrationStatus.ACTIVE,
            whatsapp_session=SESSION,
            whatsapp_connected=True,
            whatsapp_phone="+" + SALON_PHONE,
            bookform_url=f"https://n{100_000 + COMPANY}.yclients.com/",
            catalogue={
                "services": [
                    {"id": 11 + i, "title": title, "price_min": price, "price_max": price}
                    for i, (title, price) in enumerate(
                        (("Стрижка", 1500), ("Окрашивание", 4500), ("Маникюр", 1800))
                    )
                ]
            },
        )
        for i in range(KNOWN):
            client = (
                await create_client(
                    company,
                    phone="+" + phone_for(i),
                    name=f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {i}",
                    yclients_client_id=500_000 + i,
                    welcome=False,
                )
            ).client
            for n in range(3):
                await ledger.accrue(client.id, 50 + n * 10, f"seed:{client.id}:{n}")
    finally:
        await db.close_orm()


def senders() -> list[str]:
    known = [f"{phone_for(i)}@c.us" for i in range(KNOWN)]
    new = [f"{phone_for(KNOWN * 10 + i)}@c.us" for i in range(NEW)]
    return known + new


def events(count: int, seed_: int, tag: str) -> list[bytes]:
    rng = random.Random(seed_)
    who = senders()
    texts = [text for text, weight in MIX for _ in range(weight)]
    now = int(time.time())
    out = []
    for n in range(count):
        sender = rng.choice(who)
        message_id = f"false_{sender}_3EB0{tag}{n:06d}{secrets.token_hex(4).upper()}"
        event = {
            "id": f"evt_{tag}{n:06d}{secrets.token_hex(5)}",
            "timestamp": now * 1000,
            "event": "message",
            "session": SESSION,
            "metadata": {},
            "me": {"id": f"{SALON_PHONE}@c.us", "pushName": "Салон"},
            "payload": {
                "id": message_id,
                "timestamp": now,
                "from": sender,
                "fromMe": False,
                "source": "app",
                "to": f"{SALON_PHONE}@c.us",
                "body": rng.choice(texts),
                "hasMedia": False,
                "media": None,
                "ack": 1,
                "replyTo": None,
                "_data": {},
            },
            "engine": "GOWS",
        }
        out.append(json.dumps(event, ensure_ascii=False).encode())
    return out


# --- measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float
    started_at: float  # time.time() of the first POST
    last_ok_at: float

    @property
    def per_s(self) -> float:
        return self.events / self.seconds


async def post_all(url: str, bodies: Sequence[bytes], time_limit: float) -> Accept:
    pending = iter(bodies)
    latencies: list[float] = []
    last_ok = 0.0
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:

        async def worker() -> None:
            nonlocal last_ok
            for body in pending:
                headers = {
                    "Content-Type": "application/json",
                    "X-Webhook-Request-Id": f"req_{secrets.token_hex(6)}",
                    "X-Webhook-Timestamp": str(time.time_ns() // 1_000_000),
                    "X-Webhook-Hmac": hmac.new(HMAC_KEY.encode(), body, hashlib.sha512).hexdigest(),
                    "X-Webhook-Hmac-Algorithm": "sha512",
                }
                started = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                    if response.status != 200 or b'"duplicate": false' not in answer:
                        raise BenchError(f"HTTP {response.status}: {answer[:200]!r}")
                last_ok = time.time()
                latencies.append(time.perf_counter() - started)

        wall_started, started = time.time(), time.perf_counter()
        try:
            async with asyncio.timeout(time_limit):
                async with asyncio.TaskGroup() as group:
                    for _ in range(CONNECTIONS):
                        group.create_task(worker())
        except TimeoutError:
            raise BenchError(f"posting took longer than {time_limit:g}s") from None
        except ExceptionGroup as errors:
            raise BenchError(f"a POST failed: {errors.exceptions[0]!r}") from None
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Accept(
        len(bodies),
        elapsed,
        percentile(latencies, 0.50) * 1000,
        percentile(latencies, 0.99) * 1000,
        wall_started,
        last_ok,
    )


_HANDED = re.compile(r'^salonbot_whatsapp_messages_total\{kind="(\w+)",outcome="(\w+)"\} (\S+)$')


async def handed(http: aiohttp.ClientSession, serve_url: str) -> dict[str, int]:
    async with http.get(f"{serve_url}/metrics") as response:
        text = await response.text()
    counts: dict[str, int] = {}
    for line in text.splitlines():
        match = _HANDED.match(line)
        if match:
            counts[match.group(2)] = counts.get(match.group(2), 0) + int(float(match.group(3)))
    return counts


async def wait_answered(
    stats_url: str,
    serve_url: str,
    expected_seen: int,
    sent_before: int,
    time_limit: float,
    database_url: str,
) -> dict[str, Any]:
    """Poll until every message was marked seen and what the emulator received equals what
    salonbot handed over; the emulator's last stats, with `drained_at`: when the inbox had
    no pending event left (every message handled, its answer handed to the Outbox)."""
    deadline = time.monotonic() + time_limit
    drained_at: float | None = None
    conn = await asyncpg.connect(database_url, timeout=5)
    async with aiohttp.ClientSession() as http:
        while True:
            if drained_at is None and not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM inbox_event WHERE status = 'pending')"
            ):
                drained_at = time.time()
            async with http.get(f"{stats_url}/bench/stats", headers=KEY) as response:
                stats: dict[str, Any] = await response.json()
            if stats["seen"] >= expected_seen:
                counts = await handed(http, serve_url)
                if counts.get("failed"):
                    raise BenchError(f"{counts['failed']} WhatsApp send(s) failed")
                if stats["sent"] == counts.get("sent", 0) - sent_before:
                    await conn.close()
                    return {**stats, "drained_at": drained_at or time.time()}
            if time.monotonic() > deadline:
                raise BenchError(f"not every message was answered within {time_limit:g}s: {stats}")
            await asyncio.sleep(POLL_S)


async def check_inbox(url: str, expected: int) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT status, count(*) AS n, count(last_error) AS errors FROM inbox_event"
            " WHERE source = 'whatsapp' GROUP BY status"
        )
    finally:
        await conn.close()
    counts = {row["status"]: int(row["n"]) for row in rows}
    errors = sum(int(row["errors"]) for row in rows)
    if counts.get("done", 0) != expected or errors:
        raise BenchError(
            f"inbox after the run: {counts}, {errors} failed; expected {expected} done"
        )


# --- main ----------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    require_local(args.dsn)
    try:
        url = await create_database(args.dsn)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BenchError(f"cannot create the bench database on {args.dsn}: {exc}") from None
    work = Path(tempfile.mkdtemp(prefix="salonbot-bench-whatsapp-"))
    children: list[Child] = []
    try:
        print(f"database {url.rsplit('/', 1)[1]} (PostgreSQL {await server_version(url)})")
        print(f"nproc {os.cpu_count()}, python {sys.version.split()[0]}, load {load_text()}")
        await seed(url)

        ports = work / "emulator.json"
        emulator = Child(
            "WAHA emulator",
            [sys.executable, str(THIS), "--emulator", str(ports)],
            clean_env() | {"BENCH_WAHA_API_KEY": API_KEY},
            work / "emulator.log",
            cwd=ROOT,
        )
        children.append(emulator)
        await emulator.start()
        deadline = time.monotonic() + 30
        while not ports.exists() or not ports.read_text():
            if time.monotonic() > deadline:
                raise BenchError(f"the emulator did not start:\n{emulator.tail()}")
            await asyncio.sleep(0.1)
        waha_url = ports.read_text()

        port = free_port()
        serve = Child(
            "salonbot serve",
            [str(SALONBOT), "serve"],
            serve_env(url, port, work / "data", waha_url),
            work / "serve.log",
            cwd=ROOT,
        )
        children.append(serve)
        await serve.start()
        serve_url = f"http://127.0.0.1:{port}"
        await serve.wait_http(f"{serve_url}/health")
        hook = f"{serve_url}/webhook/whatsapp"

        # Warm-up, not measured: connections opened, pools filled, first chats created.
        warm = events(WARM_UP, args.seed + 1000, "W")
        await post_all(hook, warm, args.timeout)
        await wait_answered(waha_url, serve_url, len(warm), 0, args.timeout, url)
        async with aiohttp.ClientSession() as http:
            sent_before = (await handed(http, serve_url)).get("sent", 0)
            async with http.post(f"{waha_url}/bench/reset", headers=KEY):
                pass

        bodies = events(args.events, args.seed, "M")
        print(f"\n{args.events:,} message events, {CONNECTIONS} connections, load {load_text()}")
        pid = serve.proc.pid if serve.proc else None
        cpu_before = process_cpu(pid)
        accept = await post_all(hook, bodies, args.timeout)
        stats = await wait_answered(
            waha_url, serve_url, args.events, sent_before, args.timeout, url
        )
        cpu_after = process_cpu(pid)
        await check_inbox(url, WARM_UP + args.events)
        if stats["seen"] != args.events or stats["seen_distinct"] != args.events:
            raise BenchError(
                f"{stats['seen']} messages answered ({stats['seen_distinct']} distinct)"
                f" of {args.events}"
            )
    except BenchError:
        for child in children:
            print(f"--- {child.name} log (tail) ---\n{child.tail()}", file=sys.stderr)
        raise
    finally:
        for child in children:
            await child.stop()
        await drop_database(args.dsn, url)

    end_to_end = stats["last_at"] - accept.started_at
    replies = args.events / end_to_end
    print(
        f"accept: {accept.per_s:,.0f} events/s, p50 {accept.p50_ms:.2f} ms,"
        f" p99 {accept.p99_ms:.2f} ms ({accept.seconds:.2f} s for all)"
    )
    print(
        f"answers: {stats['sent']:,} messages ({stats['images']:,} QR images) to"
        f" {stats['chats']:,} chats; the last {end_to_end:.2f} s after the first POST,"
        f" {stats['last_at'] - accept.last_ok_at:.2f} s after the last 200"
    )
    print(
        f"inbox drained {stats['drained_at'] - accept.started_at:.2f} s after the first POST:"
        f" {args.events / (stats['drained_at'] - accept.started_at):,.0f} messages handled/s"
    )
    print(f"end to end: {replies:,.0f} replies/s ({stats['sent'] / end_to_end:,.0f} messages/s)")
    if cpu_before is not None and cpu_after is not None:
        busy = cpu_after - cpu_before
        print(
            f"salonbot serve: {busy / args.events * 1e3:.2f} ms CPU per message"
            f" ({busy / end_to_end:.0%} of one core while it ran)"
        )
    print(f"load average at the end: {load_text()}")
    p99_ok, replies_ok = accept.p99_ms < GOAL_P99_MS, replies >= GOAL_REPLIES
    print(
        f"\ngoal: accept p99 < {GOAL_P99_MS:g} ms: {accept.p99_ms:.2f} ms"
        f" {'PASS' if p99_ok else 'FAIL'}"
    )
    print(
        f"goal: >= {GOAL_REPLIES:g} replies/s end to end: {replies:,.0f}"
        f" {'PASS' if replies_ok else 'FAIL'}"
    )
    return 1 if args.check and not (p99_ok and replies_ok) else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="admin DSN on 127.0.0.1")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--events", type=int, default=EVENTS, help="message events to post")
    parser.add_argument("--timeout", type=float, default=300.0, help="per measurement, seconds")
    parser.add_argument("--seed", type=int, default=1, help="seed of the messages")
    parser.add_argument("--emulator", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.emulator is None and not 100 <= args.events <= 100_000:
        parser.error("--events 100..100000")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.emulator is not None:
        asyncio.run(run_emulator(arguments.emulator))
        sys.exit(0)
    run_main(main(arguments), "processes stopped and database dropped")
