"""Balance notices with a fallback: 10,000 notices through bot.notifier.RoutingNotifier and
bot.outbound, where 20% of the clients' Telegram chats are blocked and every client has
WhatsApp too.

Run from the project root:

    .venv/bin/python bench/fallback.py [--dsn postgres://postgres@127.0.0.1:5432/test] [--rounds 3]

A fresh database (salonbot_bench_<random>) is created on the server of `--dsn`, migrated with
the real migrations, given one active salon with a linked WhatsApp session and 10,000 clients,
each with a Telegram id and a WhatsApp chat, Telegram used last; it is dropped at the end, even
on failure. The outside systems are the test suite's fakes on loopback, in this process: the
Bot API server (tests/fakes/telegram.FakeBotAPI, answering 403 "bot was blocked by the user"
for the blocked chats) reached by a real aiogram Bot over HTTP, and the WAHA emulator
(tests/fakes/waha.py) reached by the real WahaGateway and Outbox (manners off: no pause, no
rate limit).

One measurement: 10,000 notices (one accrual each, one per client), handed to the notice
router by 32 concurrent workers (`RoutingNotifier.notify`, what the inbox worker calls after
commit). Three cases per round, on the same notices:

* baseline: no chat blocked, every notice goes to Telegram;
* fallback: 20% of Telegram chats blocked and not yet known: Telegram refuses, the client is
  marked, WhatsApp delivers;
* remembered: the same 20% again, now marked: they go straight to WhatsApp.

The marks are cleared before each baseline and fallback case. After every case the run checks,
per client, that the notice was delivered on exactly one channel exactly once (a 200 from the
Bot API fake or a WhatsApp send recorded by the emulator), that blocked clients got it in
WhatsApp and were asked for in Telegram at most once, and that no send failed; otherwise it
fails (exit 2). Reported: wall time and notices/s per case, the median of `--rounds` rounds,
and each case's ratio to the baseline of the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_DSN,
    BenchError,
    create_database,
    drop_database,
    require_local,
    run_main,
    server_version,
)
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.notifier import RoutingNotifier
from bot.outbound import Outbound
from bot.telegram.delivery import TelegramChannel
from bot.whatsapp.delivery import WhatsAppChannel
from bot.whatsapp.outbox import Manners, Outbox
from core import codes, db
from core.models import Client, Company, IntegrationStatus, LedgerKind
from core.notifications import BalanceNotice, LoggingNotifier
from core.whatsapp import WahaGateway
from tests.fakes.telegram import TOKEN, FakeBotAPI
from tests.fakes.waha import WORKING, FakeSession, WahaEmulator

NOTICES = 10_000
BLOCKED_SHARE = 0.20
WORKERS = 32
SESSION = "salon-777001"
SALON_PHONE = "79000000001"
FIRST_TG_ID = 10_000_000


@dataclass(frozen=True, slots=True)
class Case:
    wall_s: float

    @property
    def per_s(self) -> float:
        return NOTICES / self.wall_s


async def seed() -> tuple[Company, list[Client]]:
    company = await Company.create(
        yclients_id=777001,
        title="Салон Бенчмарк",
        hook_token=secrets.token_urlsafe(16),
        integration_status=IntegrationStatus.ACTIVE,
        whatsapp_session=SESSION,
        whatsapp_connected=True,
    )
    rows = [
        Client(
            company=company,
            phone=f"+7901{i:07d}",
            name=f"Клиент {i}",
            telegram_user_id=FIRST_TG_ID + i,
            whatsapp_chat_id=f"7901{i:07d}@c.us",
            last_channel="telegram",
            code=codes.generate(),
            balance=100,
        )
        for i in range(NOTICES)
    ]
    await Client.bulk_create(rows, batch_size=1000)
    return company, list(await Client.filter(company_id=company.id).order_by("id"))


def notices_for(company: Company, clients: Sequence[Client]) -> list[BalanceNotice]:
    return [BalanceNotice(company.id, c.id, LedgerKind.ACCRUAL, 50, 150) for c in clients]


async def deliver(notifier: RoutingNotifier, notices: Sequence[BalanceNotice]) -> float:
    queue = iter(notices)

    async def worker() -> None:
        for notice in queue:
            await notifier.notify([notice])

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return time.perf_counter() - start


def check(
    clients: Sequence[Client],
    blocked: set[int],
    telegram: FakeBotAPI,
    waha: WahaEmulator,
    tg_from: int,
    wa_from: int,
    *,
    remembered: bool,
) -> None:
    asked = Counter(
        c.params.get("chat_id") for c in telegram.calls[tg_from:] if c.method == "sendMessage"
    )
    whatsapp = Counter(m["chatId"] for m in waha.sent[wa_from:])
    for client in clients:
        tg_id, chat = client.telegram_user_id, client.whatsapp_chat_id
        in_tg = asked[tg_id] if tg_id not in blocked else 0
        in_wa = whatsapp[chat]
        if in_tg + in_wa != 1:
            raise BenchError(f"client {client.id}: {in_tg} in Telegram, {in_wa} in WhatsApp")
        if tg_id in blocked:
            expected_asks = 0 if remembered else 1
            if in_wa != 1 or asked[tg_id] != expected_asks:
                raise BenchError(
                    f"blocked client {client.id}: Telegram asked {asked[tg_id]} times, "
                    f"WhatsApp {in_wa}"
                )


async def run(args: argparse.Namespace, url: str) -> int:
    await db.init_orm(url, pool_size=WORKERS)
    try:
        await db.migrate()
        company, clients = await seed()
        rng = random.Random(args.seed)
        blocked = {
            int(c.telegram_user_id)
            for c in rng.sample(clients, int(NOTICES * BLOCKED_SHARE))
            if c.telegram_user_id is not None
        }
        notices = notices_for(company, clients)
        async with FakeBotAPI() as telegram, WahaEmulator(api_key="bench-key") as waha:
            waha.sessions[SESSION] = FakeSession(
                SESSION, config={}, status=WORKING, me={"id": f"{SALON_PHONE}:15@c.us"}
            )
            bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(telegram.url)))
            gateway = WahaGateway(waha.url, "bench-key", "h" * 32)
            failures: list[str] = []
            outbox = Outbox(
                gateway,
                Manners(pause=0, rate=0, concurrency=WORKERS),
                on_result=lambda kind, ok: None if ok else failures.append(kind),
            )
            outbound = Outbound(
                {"telegram": TelegramChannel(bot), "whatsapp": WhatsAppChannel(outbox)}
            )
            notifier = RoutingNotifier(outbound, LoggingNotifier())
            try:
                # Warm-up (not measured): the pools, the caches, the Bot API's pydantic types.
                await deliver(notifier, notices[:500])
                rounds: dict[str, list[Case]] = {"baseline": [], "fallback": [], "remembered": []}
                for number in range(args.rounds):
                    for name in rounds:
                        if name != "remembered":
                            await Client.filter(company_id=company.id).update(unreachable={})
                        telegram.blocked_chats.clear()
                        if name != "baseline":
                            telegram.blocked_chats.update(blocked)
                        tg_from, wa_from = len(telegram.calls), len(waha.sent)
                        wall = await deliver(notifier, notices)
                        await outbox.idle()
                        check(
                            clients,
                            blocked if name != "baseline" else set(),
                            telegram,
                            waha,
                            tg_from,
                            wa_from,
                            remembered=name == "remembered",
                        )
                        if failures:
                            raise BenchError(f"{len(failures)} WhatsApp send(s) failed")
                        rounds[name].append(Case(wall))
                        print(
                            f"round {number + 1} {name:<10} {wall:6.2f} s "
                            f"{NOTICES / wall:7.0f} notices/s",
                            flush=True,
                        )
                report(rounds)
            finally:
                await outbox.close()
                await gateway.aclose()
                await bot.session.close()
    finally:
        await db.close_orm()
    return 0


def report(rounds: dict[str, list[Case]]) -> None:
    base = rounds["baseline"]
    print()
    print(f"{NOTICES:,} notices, {BLOCKED_SHARE:.0%} of Telegram chats blocked, {WORKERS} workers")
    print("| case | wall time, s (median) | notices/s (median) | ratio to baseline (median) |")
    print("|---|---:|---:|---:|")
    for name, cases in rounds.items():
        ratios = [b.wall_s / c.wall_s for b, c in zip(base, cases, strict=True)]
        print(
            f"| {name} | {statistics.median(c.wall_s for c in cases):.2f} "
            f"| {statistics.median(c.per_s for c in cases):,.0f} "
            f"| {statistics.median(ratios):.2f} |"
        )


async def main(args: argparse.Namespace) -> int:
    require_local(args.dsn)
    url = await create_database(args.dsn)
    try:
        print(f"PostgreSQL {await server_version(url)}", flush=True)
        return await run(args, url)
    finally:
        await drop_database(args.dsn, url)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11))
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    run_main(main(parse_args()), "the database was dropped")
