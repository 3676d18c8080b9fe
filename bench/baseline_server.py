"""The webhook benchmark's baseline: the least a server can do with a webhook.

    .venv/bin/python bench/baseline_server.py --dsn postgres://…@127.0.0.1/<db> --port 8123

A bare aiohttp application in one process whose only route, POST /webhook/{token}, reads the
body and stores it with one asyncpg INSERT (autocommit, like the inbox's) into
`bench_baseline (id bigserial, body jsonb, received_at timestamptz)`, created if missing, then
answers `{"ok": true}`. No routing table of salons, no validation, no ORM, no metrics: what
`salonbot serve` is compared against. It runs on the same event loop as
`salonbot serve` (web.loop.new_event_loop). Started and stopped (SIGTERM) by bench/webhooks.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from web.loop import new_event_loop

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
POOL_SIZE = 20  # what `salonbot serve` opens (web/app.py: pool_size=20)
POOL = web.AppKey("pool", asyncpg.Pool)
INSERT = "INSERT INTO bench_baseline (body, received_at) VALUES ($1::text::jsonb, now())"


async def store(request: web.Request) -> web.Response:
    body = await request.text()
    await request.app[POOL].execute(INSERT, body)
    return web.json_response({"ok": True})


async def serve(dsn: str, port: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, timeout=5)
    try:
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS bench_baseline"
            " (id bigserial PRIMARY KEY, body jsonb NOT NULL, received_at timestamptz NOT NULL)"
        )
        app = web.Application(client_max_size=1024 * 1024)
        app[POOL] = pool
        app.router.add_post("/webhook/{token}", store)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"baseline listening on 127.0.0.1:{port}", flush=True)
        await stop.wait()
        await runner.cleanup()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="the bench database, on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    host = urlsplit(args.dsn).hostname or ""
    if host not in LOCAL_HOSTS:
        print(f"refusing a non-local PostgreSQL host: {host!r}", file=sys.stderr)
        return 2
    # The loop `salonbot serve` runs on (uvloop where installed), so the two differ only in
    # what they do with a webhook.
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(args.dsn, args.port))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
