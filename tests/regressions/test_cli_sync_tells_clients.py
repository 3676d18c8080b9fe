"""`salonbot sync` awarded bonuses and told nobody: the worker, the cron and the sync API handed
their ledger results to the notifier after commit, the CLI did not (against "every change of
balance is told to the client"). It now opens the web process's chat channels
(web.channels.standalone_channels) and tells clients through core.notifications.notify_committed,
here through the loopback Bot API."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core import db
from core.i18n import gettext
from core.models import Client, Company, IntegrationStatus, LedgerEntry
from tests.fakes.telegram import TOKEN, FakeBotAPI
from tests.fakes.yclients import PARTNER_TOKEN, USER_TOKEN, YClientsEmulator
from tests.web.test_sync_api_and_cli import run_cli

ANNA = 7001


@pytest.fixture
async def emulator() -> AsyncIterator[YClientsEmulator]:
    async with YClientsEmulator() as emu:
        yield emu


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


async def test_salonbot_sync_tells_clients_about_the_bonuses_it_awarded(
    clean_db: str, emulator: YClientsEmulator, telegram: FakeBotAPI, tmp_path: Path
) -> None:
    emulator.add_company(777)
    emulator.add_record(777, attendance=1)  # Анна, +7 999 123-45-67, 1500 ₽, came
    await db.init_orm(clean_db)
    try:
        company = await Company.create(
            yclients_id=777,
            hook_token=secrets.token_urlsafe(24),
            yclients_user_token=USER_TOKEN,
            integration_status=IntegrationStatus.ACTIVE,
            accrual_percent=10,
        )
        await Client.create(
            company=company,
            phone="+79991234567",
            telegram_user_id=ANNA,
            locale="ru",
            code="ANNA00001",
            last_channel="telegram",
        )
    finally:
        await db.close_orm()
    env = {
        "DATABASE_URL": clean_db,
        "SECRET_KEY": "k" * 40,
        "DATA_DIR": str(tmp_path / "data"),
        "YCLIENTS_API_URL": emulator.url,
        "YCLIENTS_PARTNER_TOKEN": PARTNER_TOKEN,
        "YCLIENTS_RATE_LIMIT": "1000",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_MODE": "polling",
    }

    code, out, err = await asyncio.to_thread(run_cli, ["sync", "--company", "777"], env, tmp_path)

    assert code == 0, err
    assert out.splitlines()[1].split()[6] == "1"  # awarded
    sent = telegram.calls_to("sendMessage")
    assert [call.params["chat_id"] for call in sent] == [ANNA]
    text = sent[0].params["text"]
    earned = gettext("ru", "Thank you for your visit! Bonus points earned: {amount}.")
    assert earned.format(amount=150) in text
    await db.init_orm(clean_db)
    try:
        assert await LedgerEntry.filter(client__telegram_user_id=ANNA, amount=150).exists()
    finally:
        await db.close_orm()
