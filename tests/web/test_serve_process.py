"""`salonbot serve` as a real process: empty data dir, no .env, /health, SIGTERM, exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import BACKEND


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_starts_answers_health_and_exits_zero_on_sigterm(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "YCLIENTS_"))}
    env |= {"HTTP_PORT": str(port), "DATA_DIR": str(tmp_path / "data"), "LOG_FORMAT": "json"}
    env.pop("DATABASE_URL", None)
    env.pop("SECRET_KEY", None)
    if BACKEND == "postgres":
        env |= {"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40}
    salonbot = Path(sys.executable).with_name("salonbot")
    proc = await asyncio.create_subprocess_exec(
        str(salonbot),
        "serve",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        body = None
        deadline = time.monotonic() + 120  # a hang guard, not a speed bound
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline and proc.returncode is None:
                try:
                    response = await http.get(f"http://127.0.0.1:{port}/health", timeout=2)
                    body = response.json()
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
            assert body is not None, "serve never answered /health"
            assert body["status"] == "ok" and body["migrations"]["current"]
            # A request racing the SIGTERM still gets its answer: shutdown is graceful.
            in_flight = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/health", timeout=5))
            await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert (await in_flight).status_code == 200
        _out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    log = err.decode()
    if BACKEND == "sqlite":
        assert (tmp_path / "data" / "salonbot.sqlite3").exists()
        assert "SECRET_KEY is not set" in log
    assert '"message": "telegram off: TELEGRAM_BOT_TOKEN not set' in log
