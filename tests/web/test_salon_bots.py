"""A salon's own Telegram bot (issue 15): it greets as the salon without a deep-link payload,
carries the salon's notices, runs next to the shared bot on one dispatcher, starts, changes and
stops without a restart, answers webhooks only with its own secret, and a revoked token
switches it off with a word to the salon's admins."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from core import db, salon_settings
from core.models import (
    Client,
    Company,
    IntegrationStatus,
    LedgerKind,
    SettingChange,
    Staff,
    StaffRole,
)
from core.notifications import BalanceNotice
from core.salon_bot import set_salon_bot, webhook_secret
from core.settings import Settings
from tests.fakes.clock import FakeClock
from tests.fakes.telegram import TOKEN, FakeBot, FakeBotAPI, Person
from tests.web.onboarding_support import until
from tests.web.test_bot_cli import env_for
from tests.web.test_sync_api_and_cli import run_cli
from web.app import create_app
from web.keys import NOTIFIER, SALON_BOTS, SALON_BOTS_CLOCK
from web.salon_bots import RECONCILE_EVERY

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
SALON_TOKEN = "555000111:" + "S" * 35
OTHER_TOKEN = "555000222:" + "T" * 35
SECRET = "path-secret-0123456789"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


def with_bot(settings: Settings, api: FakeBotAPI, **changes: Any) -> Settings:
    return settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_url": api.url,
            "telegram_mode": "polling",
            **changes,
        }
    )


async def salon(yclients_id: int, title: str) -> Company:
    return await Company.create(
        yclients_id=yclients_id,
        title=title,
        hook_token=secrets.token_urlsafe(16),
        integration_status=IntegrationStatus.ACTIVE,
    )


async def start_app(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock
) -> TestClient[Any, Any]:
    app = create_app(settings)
    app[SALON_BOTS_CLOCK] = clock.clock()
    http = await aiohttp_client(app)
    await clock.next_sleep()  # the reconcile loop has made its first round
    return http


async def next_round(clock: FakeClock) -> None:
    """A minute passes: the reconcile loop makes its next round (and sleeps again)."""
    clock.advance(RECONCILE_EVERY)
    await asyncio.sleep(0)
    await clock.next_sleep()


def texts(bot: FakeBot, chat_id: int) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in bot.calls_to("sendMessage")
        if c.params.get("chat_id") == chat_id
    ]


async def test_a_salon_bot_greets_as_the_salon_and_carries_its_notices(
    aiohttp_client: ClientFactory, settings: Settings, telegram: FakeBotAPI
) -> None:
    own = telegram.add_bot(SALON_TOKEN, "romashka_salon_bot")
    clock = FakeClock()
    http = await start_app(aiohttp_client, with_bot(settings, telegram), clock)
    romashka = await salon(555, "Салон Ромашка")
    await salon(556, "Салон Лилия")
    await set_salon_bot(romashka, SALON_TOKEN, api_url=telegram.url)
    await next_round(clock)
    await own.wait_for("deleteWebhook")

    anna = Person(7001)
    own.push(anna.says("/start"))  # no payload: every update of this bot is the salon's
    greeting = await own.wait_for("sendMessage", lambda c: c.params["chat_id"] == anna.id)
    assert "Салон Ромашка" in greeting.params["text"]
    mark = len(own.calls)
    own.push(anna.shares_contact("+79001234567"))
    await own.wait_for("sendMessage", lambda c: "сохранён" in c.params["text"], after=mark)
    client = await Client.get(company_id=romashka.id, telegram_user_id=anna.id)

    async def recorded() -> bool:
        await client.refresh_from_db()
        return client.telegram_bot_id == own.id

    await until(recorded, message="the client's chat recorded as with the salon's bot")

    # A link to another salon does not move the salon's own bot elsewhere.
    mark = len(own.calls)
    own.push(anna.says("/start salon-556"))
    moved = await own.wait_for("sendMessage", after=mark)
    assert "Ромашка" in moved.params["text"] and "Лилия" not in moved.params["text"]

    # The salon's notices go through its own bot: the client started that one.
    mark = len(own.calls)
    notice = BalanceNotice(romashka.id, client.id, LedgerKind.ACCRUAL, 150, 150)
    await http.app[NOTIFIER].notify([notice])
    told = await own.wait_for("sendMessage", lambda c: "150" in c.params["text"], after=mark)
    assert told.params["chat_id"] == anna.id

    # The shared bot keeps serving salons without a bot of their own.
    boris = Person(7002)
    telegram.push(boris.says("/start salon-556"))
    shared = await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == boris.id)
    assert "Салон Лилия" in shared.params["text"]
    assert not texts(telegram.main, anna.id)  # nothing for Anna went through the shared bot
    assert not texts(own, boris.id)


async def test_the_salon_bot_webhook_takes_only_its_own_secret(
    aiohttp_client: ClientFactory, settings: Settings, telegram: FakeBotAPI
) -> None:
    own = telegram.add_bot(SALON_TOKEN, "romashka_salon_bot")
    hooked = with_bot(
        settings,
        telegram,
        telegram_mode="webhook",
        telegram_webhook_secret=SecretStr(SECRET),
        public_base_url="https://bot.example",
    )
    clock = FakeClock()
    http = await start_app(aiohttp_client, hooked, clock)
    romashka = await salon(555, "Салон Ромашка")
    await set_salon_bot(romashka, SALON_TOKEN, api_url=telegram.url)
    await romashka.refresh_from_db()
    key = str(romashka.telegram_bot_key)
    assert SALON_TOKEN not in key and len(key) >= 32
    path = f"/webhook/telegram/bot/{key}"
    secret = webhook_secret("s" * 48, key)

    update = Person(7001).says("/start")
    good = {"X-Telegram-Bot-Api-Secret-Token": secret}
    # This replica has not reconciled yet: the key is looked up in the database.
    assert (await http.post(path, json=update)).status == 403
    hooked_at = await own.wait_for("setWebhook")
    assert hooked_at.params["url"] == f"https://bot.example{path}"
    assert hooked_at.params["secret_token"] == secret
    assert SALON_TOKEN not in hooked_at.params["url"]

    assert (await http.post("/webhook/telegram/bot/" + "x" * 32, json=update)).status == 404
    bad = {"X-Telegram-Bot-Api-Secret-Token": webhook_token_of_another()}
    assert (await http.post(path, json=update, headers=bad)).status == 403
    # The shared bot's secret is not this bot's.
    shared = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret("s" * 48, "other")}
    assert (await http.post(path, json=update, headers=shared)).status == 403
    assert (await http.post(path, data=b"{nope", headers=good)).status == 400
    assert not own.calls_to("sendMessage")
    response = await http.post(path, json=update, headers=good)
    assert response.status == 200
    sent = own.calls_to("sendMessage")
    assert {c.params["chat_id"] for c in sent} == {7001}
    assert "Салон Ромашка" in sent[0].params["text"]
    assert not telegram.calls_to("sendMessage")


def webhook_token_of_another() -> str:
    return "x" * 64


async def test_a_salon_bot_set_replaced_and_removed_at_runtime(
    aiohttp_client: ClientFactory, settings: Settings, telegram: FakeBotAPI
) -> None:
    first = telegram.add_bot(SALON_TOKEN, "romashka_salon_bot")
    second = telegram.add_bot(OTHER_TOKEN, "romashka_new_bot")
    clock = FakeClock()
    http = await start_app(aiohttp_client, with_bot(settings, telegram), clock)
    runner = http.app[SALON_BOTS]
    romashka = await salon(555, "Салон Ромашка")
    anna = Person(7001)

    # As `salonbot company set` does it: through the salon's settings, audited.
    changes = await salon_settings.change(
        romashka, {"telegram_bot_token": SALON_TOKEN}, actor="cli", telegram_api_url=telegram.url
    )
    assert [(c.key, c.old) for c in changes] == [("telegram_bot_token", "off")]
    assert SALON_TOKEN not in changes[0].new
    assert first.polls == 0
    await next_round(clock)  # within a minute, no restart
    first.push(anna.says("/start"))
    await first.wait_for("sendMessage", lambda c: "Ромашка" in c.params["text"])

    await salon_settings.change(
        romashka, {"telegram_bot_token": OTHER_TOKEN}, actor="cli", telegram_api_url=telegram.url
    )
    await next_round(clock)
    await until(lambda: runner.registry.of_company(romashka.id) is not None)
    found = runner.registry.of_company(romashka.id)
    assert found is not None and found.bot.id == second.id
    second.push(anna.says("/start"))
    await second.wait_for("sendMessage", lambda c: "Ромашка" in c.params["text"])
    await second.polled()
    polls, answered = first.polls, len(first.calls_to("sendMessage"))
    first.push(anna.says("/start"))
    await second.polled()
    await second.polled()
    # The replaced bot is polled no more: what is written to it stays unanswered.
    assert first.polls == polls and len(first.calls_to("sendMessage")) == answered

    await salon_settings.change(romashka, {"telegram_bot_token": "off"}, actor="cli")
    await romashka.refresh_from_db()
    assert romashka.telegram_bot_token is None and romashka.telegram_bot_key is None
    await next_round(clock)
    assert len(runner.registry) == 0 and not runner.tasks
    audit = await SettingChange.filter(key="telegram_bot_token").order_by("id")
    assert [row.new_value for row in audit][-1] == "off"
    assert not any(SALON_TOKEN in row.old_value + row.new_value for row in audit)


async def test_a_revoked_token_switches_the_bot_off_and_tells_the_admins(
    aiohttp_client: ClientFactory, settings: Settings, telegram: FakeBotAPI
) -> None:
    own = telegram.add_bot(SALON_TOKEN, "romashka_salon_bot")
    clock = FakeClock()
    http = await start_app(aiohttp_client, with_bot(settings, telegram), clock)
    runner = http.app[SALON_BOTS]
    romashka = await salon(555, "Салон Ромашка")
    await Staff.create(company=romashka, telegram_user_id=9001, role=StaffRole.ADMIN)
    await Staff.create(company=romashka, telegram_user_id=9002, role=StaffRole.STAFF)
    await set_salon_bot(romashka, SALON_TOKEN, api_url=telegram.url)
    await next_round(clock)
    await own.polled()

    own.revoke()  # the owner revoked it in @BotFather: the next getUpdates answers 401
    told = await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == 9001)
    assert "@romashka_salon_bot" in told.params["text"]
    assert "Салон Ромашка" in told.params["text"] and "@BotFather" in told.params["text"]
    assert not texts(telegram.main, 9002)  # the admins, not every staff member
    await romashka.refresh_from_db()
    assert romashka.telegram_bot_token is None and romashka.telegram_bot_revoked_at is not None
    assert len(runner.registry) == 0
    (audit,) = await SettingChange.filter(actor="telegram")
    assert (audit.key, audit.new_value) == ("telegram_bot_token", "off")
    await next_round(clock)  # the next round does not bring it back, nor tell them again
    assert len(runner.registry) == 0
    assert len(texts(telegram.main, 9001)) == 1


async def test_in_webhook_mode_a_notice_finds_the_revoked_token(
    aiohttp_client: ClientFactory, settings: Settings, telegram: FakeBotAPI
) -> None:
    """No polling tells of a revoked token in webhook mode: the first send through it does."""
    own = telegram.add_bot(SALON_TOKEN, "romashka_salon_bot")
    hooked = with_bot(
        settings,
        telegram,
        telegram_mode="webhook",
        telegram_webhook_secret=SecretStr(SECRET),
        public_base_url="https://bot.example",
    )
    clock = FakeClock()
    http = await start_app(aiohttp_client, hooked, clock)
    runner = http.app[SALON_BOTS]
    romashka = await salon(555, "Салон Ромашка")
    await Staff.create(company=romashka, telegram_user_id=9001, role=StaffRole.ADMIN)
    await set_salon_bot(romashka, SALON_TOKEN, api_url=telegram.url)
    await next_round(clock)
    await own.wait_for("setWebhook")
    client = await Client.create(
        company=romashka,
        telegram_user_id=7001,
        telegram_bot_id=own.id,
        last_channel="telegram",
        code="7KQM2X9PA",
    )
    own.revoke()
    notice = BalanceNotice(romashka.id, client.id, LedgerKind.ACCRUAL, 150, 150)
    await http.app[NOTIFIER].notify([notice])
    told = await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == 9001)
    assert "@romashka_salon_bot" in told.params["text"]
    assert not texts(telegram.main, 7001)  # the client never started the shared bot
    await romashka.refresh_from_db()
    assert romashka.telegram_bot_token is None and len(runner.registry) == 0


async def test_a_wrong_token_is_refused_in_one_sentence(orm: str, telegram: FakeBotAPI) -> None:
    telegram.add_bot(SALON_TOKEN, "romashka_salon_bot")
    romashka = await salon(555, "Салон Ромашка")

    async def refused(token: str) -> str:
        with pytest.raises(salon_settings.SettingError) as caught:
            await set_salon_bot(romashka, token, api_url=telegram.url, shared_bot_id=123456789)
        return str(caught.value)

    shape = await refused("not-a-token")
    assert shape.startswith("telegram_bot_token:") and "@BotFather" in shape
    assert "not-a-token" not in shape
    wrong = await refused("555000999:" + "W" * 35)
    assert "does not accept" in wrong and "W" * 35 not in wrong
    assert "shared bot" in await refused(TOKEN)
    other = await salon(556, "Салон Лилия")
    await set_salon_bot(other, SALON_TOKEN, api_url=telegram.url)
    assert "another salon" in await refused(SALON_TOKEN)
    await romashka.refresh_from_db()
    assert romashka.telegram_bot_token is None
    assert not await SettingChange.filter(company_id=romashka.id).exists()


async def test_company_set_takes_the_token_and_off(
    clean_db: str, tmp_path: Path, telegram: FakeBotAPI
) -> None:
    telegram.add_bot(SALON_TOKEN, "romashka_salon_bot")
    await db.init_orm(clean_db)
    try:
        await salon(555, "Салон Ромашка")
    finally:
        await db.close_orm()
    env = env_for(clean_db, tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url)

    async def cli(*values: str) -> tuple[int, str, str]:
        args = ["company", "set", "--company", "555", *values]
        return await asyncio.to_thread(run_cli, args, env, tmp_path)

    code, out, err = await cli("telegram_bot_token=555000999:" + "W" * 35)
    assert code == 1 and "W" * 35 not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith("salonbot: telegram_bot_token: Telegram does not accept this token")
    code, out, err = await cli(f"telegram_bot_token={SALON_TOKEN}")
    assert code == 0, err
    assert out.startswith("telegram_bot_token: off -> bot 555000111 (")
    assert SALON_TOKEN not in out + err
    code, out, err = await asyncio.to_thread(
        run_cli, ["company", "show", "--company", "555"], env, tmp_path
    )
    assert code == 0 and "@romashka_salon_bot" in out and SALON_TOKEN not in out
    code, out, err = await cli("telegram_bot_token=off")
    assert code == 0 and out.startswith("telegram_bot_token: bot 555000111 (")
    assert out.strip().endswith(") -> off")
    await db.init_orm(clean_db)
    try:
        company = await Company.get(yclients_id=555)
        assert company.telegram_bot_token is None and company.telegram_bot_id is None
    finally:
        await db.close_orm()
