from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from core import companies, db
from core.models import Booking, Company, IntegrationStatus
from core.settings import Settings
from tests.fakes.yclients import PARTNER_TOKEN, USER_TOKEN, YClientsEmulator
from web import cli
from web.app import create_app
from web.keys import SYNC_JOBS

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def emulator() -> AsyncIterator[YClientsEmulator]:
    async with YClientsEmulator() as emu:
        yield emu


def with_yclients(settings: Settings, emulator: YClientsEmulator) -> Settings:
    return settings.model_copy(
        update={
            "yclients_api_url": emulator.url,
            "yclients_partner_token": SecretStr(PARTNER_TOKEN),
            "yclients_user_token": SecretStr(USER_TOKEN),
            "yclients_rate_limit": 1000.0,
        }
    )


async def test_manual_sync_endpoint_needs_the_salons_api_key(
    aiohttp_client: ClientFactory, settings: Settings, emulator: YClientsEmulator
) -> None:
    emulator.add_company(555)
    emulator.add_record(555, attendance=1)
    client = await aiohttp_client(create_app(with_yclients(settings, emulator)))
    key, digest = companies.new_api_key()
    company = await Company.create(
        yclients_id=555,
        hook_token="h",
        api_key_hash=digest,
        integration_status=IntegrationStatus.ACTIVE,
    )
    url = "/api/v1/yclients/sync-bookings"
    auth = {"Authorization": f"Bearer {key}"}
    assert (await client.post(url)).status == 401
    assert (await client.post(url, headers={"Authorization": "Bearer sb_wrong"})).status == 401
    assert (await client.get(url)).status == 401
    response = await client.get(url, headers=auth)
    assert response.status == 404 and (await response.json())["status"] == "none"

    response = await client.post(url, headers=auth)
    assert response.status == 202
    assert response.headers["Location"] == url
    body = await response.json()
    assert body["status"] in {"running", "done"} and body["joined"] is False
    assert body["company"] == 555 and body["full"] is False and body["started_at"]
    await finished(client, company.id)

    response = await client.get(url, headers=auth)
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "done" and body["finished_at"]
    assert body["fetched"] == 1 and body["created"] == 1 and body["awarded"] == 1
    assert body["unmatched_records"] == []
    assert await Booking.filter(company__yclients_id=555).count() == 1


async def finished(client: TestClient[Any, Any], company_id: int) -> None:
    """Until the salon's sync job has ended (awaits the job itself, no polling)."""
    job = client.app[SYNC_JOBS].get(company_id)
    assert job is not None and job.task is not None
    await job.task


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """The real `salonbot` entry point in a thread (it runs its own event loop)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.update(env)
    old_cwd = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(args)
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


async def test_company_add_list_and_sync_from_the_command_line(
    clean_db: str, emulator: YClientsEmulator, tmp_path: Path
) -> None:
    emulator.add_company(777, title="Салон «Лилия»")
    emulator.add_record(777, attendance=1)
    emulator.add_record(777, client=None)
    env = {
        "DATABASE_URL": clean_db,
        "SECRET_KEY": "k" * 40,
        "DATA_DIR": str(tmp_path / "data"),
        "PUBLIC_BASE_URL": "https://bot.example",
        "YCLIENTS_API_URL": emulator.url,
        "YCLIENTS_PARTNER_TOKEN": PARTNER_TOKEN,
        "YCLIENTS_RATE_LIMIT": "1000",
    }
    code, out, err = await asyncio.to_thread(
        run_cli,
        ["company", "add", "--yclients-id", "777", "--user-token", USER_TOKEN],
        env,
        tmp_path,
    )
    assert code == 0, err
    assert "added: Салон «Лилия» (YClients 777)" in out
    assert "webhook URL for YClients: https://bot.example/webhook/yclients/" in out
    assert "https://n100777.yclients.com/" in out

    code, out, err = await asyncio.to_thread(run_cli, ["sync", "--company", "777"], env, tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "salon",
        "fetched",
        "created",
        "updated",
        "matched",
        "unmatched",
        "awarded",
        "reversed",
    ]
    assert lines[1].split() == ["777", "2", "2", "0", "1", "1", "1", "0"]
    assert "unmatched records" in lines[2]

    code, out, err = await asyncio.to_thread(run_cli, ["company", "list"], env, tmp_path)
    assert code == 0, err
    assert "Салон «Лилия»  [active]" in out and "ok" in out
    await db.init_orm(clean_db)
    try:
        company = await Company.get(yclients_id=777)
        assert company.yclients_user_token == USER_TOKEN
        assert f"webhook: https://bot.example/webhook/yclients/{company.hook_token}" in out
    finally:
        await db.close_orm()


async def test_company_add_without_partner_token_says_how_to_fix(
    clean_db: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": clean_db, "SECRET_KEY": "k" * 40, "YCLIENTS_PARTNER_TOKEN": ""}
    code, _out, err = await asyncio.to_thread(
        run_cli, ["company", "add", "--yclients-id", "1"], env, tmp_path
    )
    assert code == 1
    assert "YCLIENTS_PARTNER_TOKEN is not set" in err


async def test_check_reports_a_refused_yclients_token_with_the_fix(
    clean_db: str, emulator: YClientsEmulator, tmp_path: Path
) -> None:
    emulator.add_company(888)
    env = {
        "DATABASE_URL": clean_db,
        "SECRET_KEY": "k" * 40,
        "YCLIENTS_API_URL": emulator.url,
        "YCLIENTS_PARTNER_TOKEN": PARTNER_TOKEN,
        "YCLIENTS_USER_TOKEN": USER_TOKEN,
    }
    assert (
        await asyncio.to_thread(run_cli, ["company", "add", "--yclients-id", "888"], env, tmp_path)
    )[0] == 0
    code, out, _err = await asyncio.to_thread(run_cli, ["check"], env, tmp_path)
    assert code == 0 and "yclients  OK    token accepted, records readable for 1 salon(s)" in out
    env["YCLIENTS_PARTNER_TOKEN"] = "wrong-partner-token"
    code, out, _err = await asyncio.to_thread(run_cli, ["check"], env, tmp_path)
    assert code == 1
    assert "yclients  FAIL" in out and "fix:" in out and "YCLIENTS_PARTNER_TOKEN" in out
    assert "wrong-partner-token" not in out
