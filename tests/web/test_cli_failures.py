"""Every operational failure of the real `salonbot` command is one sentence with the fix, a
non-zero exit and no traceback (at the default log level); the console chat leaves quietly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.web.test_bot_cli import seed
from tests.web.test_serve_process import free_port
from tests.web.test_sync_api_and_cli import run_cli

SALONBOT = Path(sys.executable).with_name("salonbot")
PG = "127.0.0.1:5432"

# Each command that touches the database, with the arguments it needs to get that far.
COMMANDS = [
    ["serve"],
    ["migrate"],
    ["company", "list"],
    ["company", "show", "--yclients-id", "1"],
    ["company", "add", "--yclients-id", "1"],
    ["staff", "invite", "--company", "1"],
    ["staff", "add", "--company", "1", "--telegram-id", "5"],
    ["staff", "list"],
    ["staff", "remove", "--company", "1", "--telegram-id", "5"],
    ["chat", "--company", "1", "--phone", "+79991234567"],
    ["sync"],
]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    outside = ("TELEGRAM_", "YCLIENTS_", "WHATSAPP_", "REDIS_", "DATABASE_", "LOG_", "HTTP_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(outside)}
    return env | {"DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": "k" * 40, **extra}


def salonbot(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SALONBOT), *args],
        cwd=tmp_path,  # no .env there
        env=environment(tmp_path, **extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_sentence(done: subprocess.CompletedProcess[str], sentence: str) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"salonbot: {sentence}", done.stderr
    assert done.returncode == 1, done.stderr
    assert "serving on" not in done.stderr


def dead_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


def refused(port: int) -> str:
    return (
        f"database: PostgreSQL at 127.0.0.1:{port} refused the connection; "
        "start it or fix DATABASE_URL"
    )


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_command_names_a_postgres_that_refuses_connections(
    args: list[str], tmp_path: Path
) -> None:
    # In this process (the entry point, without the start-up cost of one process per command);
    # a traceback here would be an exception out of main().
    port = dead_port()
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/salonbot",
        "SECRET_KEY": "k" * 40,
        "DATA_DIR": str(tmp_path / "data"),
        "TELEGRAM_BOT_TOKEN": "",
    }
    code, out, err = run_cli(args, env, tmp_path)
    assert (code, out, err) == (1, "", f"salonbot: {refused(port)}\n")


def test_serve_names_a_postgres_that_refuses_connections(tmp_path: Path) -> None:
    port = dead_port()
    done = salonbot(["serve"], tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/x")
    assert_one_sentence(done, refused(port))


@pytest.mark.postgres
@pytest.mark.parametrize("args", [["serve"], ["company", "list"]], ids=" ".join)
def test_a_missing_database_is_named_not_taken_for_unapplied_migrations(
    args: list[str], tmp_path: Path
) -> None:
    done = salonbot(args, tmp_path, DATABASE_URL=f"postgres://postgres@{PG}/salonbot_no_such_db")
    assert_one_sentence(
        done,
        f'database: PostgreSQL at {PG} has no database "salonbot_no_such_db"; create it '
        "(createdb -U postgres salonbot_no_such_db) or fix the database name in DATABASE_URL",
    )
    assert "unapplied migrations" not in done.stderr


@pytest.mark.postgres
def test_an_unknown_role_is_named(tmp_path: Path) -> None:
    done = salonbot(
        ["migrate"], tmp_path, DATABASE_URL=f"postgres://salonbot_no_such_role@{PG}/postgres"
    )
    assert_one_sentence(
        done,
        f'database: PostgreSQL at {PG} has no role "salonbot_no_such_role"; create it '
        "(createuser salonbot_no_such_role) or fix the user in DATABASE_URL",
    )


@pytest.mark.postgres
def test_check_gives_the_same_sentence_as_problem_and_fix(tmp_path: Path) -> None:
    done = salonbot(["check"], tmp_path, DATABASE_URL=f"postgres://postgres@{PG}/salonbot_no_db")
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert f'database  FAIL  PostgreSQL at {PG} has no database "salonbot_no_db"' in done.stdout
    assert (
        "fix: create it (createdb -U postgres salonbot_no_db) or fix the database name in "
        "DATABASE_URL" in done.stdout
    )


def test_sqlite_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    (tmp_path / "a-folder").mkdir()
    done = salonbot(["migrate"], tmp_path, DATABASE_URL=f"sqlite://{tmp_path / 'a-folder'}")
    assert_one_sentence(
        done,
        f"database: SQLite cannot open {tmp_path / 'a-folder'}; check that DATA_DIR "
        "(or the path in DATABASE_URL) is a writable directory",
    )


def test_a_data_dir_that_cannot_be_a_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    done = salonbot(["company", "list"], tmp_path, DATA_DIR=str(tmp_path / "a-file"))
    assert_one_sentence(
        done,
        f"database: the SQLite folder {tmp_path / 'a-file'} cannot be created (File exists); "
        "set DATA_DIR (or the path in DATABASE_URL) to a writable directory",
    )


def test_a_port_in_use_is_named_before_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = salonbot(["serve"], tmp_path, HTTP_PORT=str(port))
    assert_one_sentence(
        done,
        f"http: port {port} on 127.0.0.1 is already in use (another salonbot?); "
        "stop what uses it or set HTTP_PORT to a free port",
    )
    assert "Event loop is closed" not in done.stderr


async def test_outside_systems_down_at_start_do_not_stop_serve(tmp_path: Path) -> None:
    port = free_port()
    env = environment(
        tmp_path,
        HTTP_PORT=str(port),
        YCLIENTS_PARTNER_TOKEN="partner-token",
        YCLIENTS_API_URL=f"http://127.0.0.1:{dead_port()}",
        WHATSAPP_GATEWAY_URL=f"http://127.0.0.1:{dead_port()}",
        WHATSAPP_GATEWAY_API_KEY="gateway-key",
        WHATSAPP_WEBHOOK_HMAC_KEY="h" * 32,
        REDIS_URL=f"redis://127.0.0.1:{dead_port()}/0",
    )
    proc = await asyncio.create_subprocess_exec(
        str(SALONBOT),
        "serve",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        status = None
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while status is None and time.monotonic() < deadline and proc.returncode is None:
                try:
                    status = (await http.get(f"http://127.0.0.1:{port}/health")).status_code
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
        assert status == 200, "serve did not stay up"
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in out.decode() + err.decode()


# --- the console chat ---


def chat_env(clean_db: str, tmp_path: Path) -> dict[str, str]:
    return environment(tmp_path, DATABASE_URL=clean_db)


async def test_chat_leaves_quietly_at_end_of_input_and_says_how_to_leave(
    clean_db: str, tmp_path: Path
) -> None:
    await seed(clean_db)
    done = await asyncio.to_thread(
        subprocess.run,
        [str(SALONBOT), "chat", "--company", "555", "--phone", "+79991234567"],
        cwd=tmp_path,
        env=chat_env(clean_db, tmp_path),
        stdin=subprocess.DEVNULL,  # Ctrl-D at once
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "Ctrl-D, Ctrl-C or /quit leaves" in done.stdout.splitlines()[0]
    assert done.stdout.endswith("you: \n")


async def test_chat_leaves_quietly_on_ctrl_c(clean_db: str, tmp_path: Path) -> None:
    await seed(clean_db)
    proc = await asyncio.create_subprocess_exec(
        str(SALONBOT),
        "chat",
        "--company",
        "555",
        "--phone",
        "+79991234567",
        cwd=tmp_path,
        env=chat_env(clean_db, tmp_path),
        stdin=asyncio.subprocess.PIPE,  # kept open: the chat waits for a line
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # A shell's background job inherits SIGINT ignored; a terminal's Ctrl-C is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    try:
        shown = b""
        while b"you: " not in shown:
            chunk = await asyncio.wait_for(proc.stdout.read(4096), timeout=60)
            assert chunk, "the chat ended before asking"
            shown += chunk
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in (shown + out + err).decode()
    assert err.decode().strip() == ""
