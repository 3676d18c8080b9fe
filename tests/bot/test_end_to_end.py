"""The whole way through the real process: `create_app` with polling against a loopback Bot API,
a YClients webhook completing a visit, the bonus notice, the balance and the QR code."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from core import codes
from core.inbox import InboxPolicy
from core.models import Client, Company, IntegrationStatus
from core.settings import Settings
from tests.fakes.telegram import TOKEN, FakeBotAPI, Person
from tests.fakes.yclients import YClientsEmulator
from web.app import create_app
from web.keys import INBOX_POLICY

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
IN_CI = os.environ.get("CI", "").lower() == "true"
FAST = InboxPolicy(
    lease=timedelta(seconds=2),
    retry_base=timedelta(milliseconds=50),
    retry_max=timedelta(milliseconds=100),
    poll_interval=0.05,
)


def zbarimg() -> str:
    found = shutil.which("zbarimg")
    if found is None:
        reason = "zbarimg is not installed (`make system-deps`, or apt-get install zbar-tools)"
        if IN_CI:
            pytest.fail(f"{reason}: required when CI=true")
        pytest.skip(reason)
    return found


def decode_qr(png: bytes, tmp_path: Path) -> str:
    image = tmp_path / "code.png"
    image.write_bytes(png)
    done = subprocess.run(
        [zbarimg(), "--quiet", "--raw", str(image)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


async def test_a_client_joins_earns_a_visit_bonus_and_sees_it(
    aiohttp_client: ClientFactory, settings: Settings, telegram: FakeBotAPI, tmp_path: Path
) -> None:
    zbarimg()
    polling = settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_url": telegram.url,
            "telegram_mode": "polling",
        }
    )
    app = create_app(polling)
    app[INBOX_POLICY] = FAST
    http = await aiohttp_client(app)
    company = await Company.create(
        yclients_id=555,
        title="Салон Ромашка",
        hook_token=secrets.token_urlsafe(24),
        integration_status=IntegrationStatus.ACTIVE,
        accrual_percent=10,
        bookform_url="https://n100555.yclients.com/",
    )
    await telegram.wait_for("deleteWebhook")
    assert {c.params.get("language_code") for c in telegram.calls_to("setMyCommands")} >= {
        "ru",
        "en",
    }
    anna = Person(7001, "Анна")

    def to_anna(text: str) -> Callable[[Any], bool]:
        return lambda call: (
            call.params.get("chat_id") == anna.id
            and text in str(call.params.get("text") or call.params.get("caption") or "")
        )

    # Starts from the salon's link and is asked for the phone with the contact button.
    telegram.push(anna.says("/start salon-555"))
    asked = await telegram.wait_for("sendMessage", to_anna("поделитесь номером"))
    assert asked.params["reply_markup"]["keyboard"][0][0]["request_contact"] is True

    # Shares it; the client is created and told so.
    telegram.push(anna.shares_contact("79991234567"))
    await telegram.wait_for("sendMessage", to_anna("номер сохранён"))
    client = await Client.get(company_id=company.id, telegram_user_id=anna.id)
    assert client.phone == "+79991234567"

    # YClients: a visit by that phone is created, then marked as came (attendance 1).
    yc = YClientsEmulator()
    yc.now = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("Europe/Moscow"))
    yc.add_company(555)
    record = yc.add_record(555)
    hook = f"/webhook/yclients/{company.hook_token}"
    assert (await http.post(hook, json=yc.webhook_for_record(record, "create"))).status == 200
    came = yc.update_record(555, record["id"], attendance=1)
    mark = len(telegram.calls)
    assert (await http.post(hook, json=yc.webhook_for_record(came))).status == 200
    notice = await telegram.wait_for("sendMessage", to_anna("Начислено бонусов: 150"), after=mark)
    assert "Ваш баланс: 150 бонусов." in notice.params["text"]

    # Then asks for the balance.
    telegram.push(anna.says("🎁 Бонусы"))
    await telegram.wait_for("sendMessage", to_anna("Ваш баланс: 150"), after=mark)

    # And for the code: text and a QR image that reads back as the code.
    telegram.push(anna.says("🔑 Мой код"))
    photo = await telegram.wait_for("sendPhoto", to_anna(codes.display(client.code)))
    attached = str(photo.params["photo"]).removeprefix("attach://")
    png = photo.files[attached]
    assert decode_qr(png, tmp_path) == codes.display(client.code)
    assert codes.parse(decode_qr(png, tmp_path)) == client.code

    await http.close()
    assert telegram.calls_to("getMe"), "polling asks who the bot is first"
