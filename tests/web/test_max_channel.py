"""The MAX channel through the real app (polling, and the webhook) against the fake MAX Bot API:
people open the salon's deep link, share their phone, ask for their code, staff redeem, a
client blocks the bot. Time is virtual: the client's per-chat limit and 429 waits move it."""

from __future__ import annotations

import asyncio
import io
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr

from bot.qr import qr_png
from core import codes, ledger
from core.backoff import Clock
from core.models import (
    Client,
    Company,
    IntegrationStatus,
    LedgerEntry,
    LedgerKind,
    MaxChat,
    Staff,
    StaffRole,
)
from core.settings import Settings
from tests.fakes.max import BOT_USERNAME as MAX_USERNAME
from tests.fakes.max import TOKEN, Call, FakeMaxAPI, MaxUser
from tests.web.onboarding_support import BOT, ClientFactory, open_bench, until
from tests.web.test_marketplace import activated_salon
from web.app import create_app
from web.keys import CLOCK, MAX_BOT, PART_STATES

SECRET = "max-hook-secret-0123456789"


class VirtualClock:
    """Time that moves only by what is slept: a short wait (the per-chat limit, a 429, an image
    not ready) costs nothing and is recorded; a long one (the webhook watch's ten minutes)
    never ends within a test."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.moment

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        if delay >= 60:
            await asyncio.Event().wait()
        self.moment += timedelta(seconds=delay)
        await asyncio.sleep(0)

    @property
    def short_waits(self) -> list[float]:
        return [d for d in self.slept if d < 60]

    def clock(self) -> Clock:
        return Clock(now=self.now, sleep=self.sleep, random=lambda: 0.5)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as api:
        yield api


def with_max(settings: Settings, api: FakeMaxAPI, **changes: Any) -> Settings:
    return settings.model_copy(
        update={"max_bot_token": SecretStr(TOKEN), "max_api_url": api.url, **changes}
    )


async def salon() -> Company:
    return await Company.create(
        yclients_id=555,
        title="Салон Ромашка",
        hook_token=secrets.token_urlsafe(16),
        integration_status=IntegrationStatus.ACTIVE,
        accrual_percent=10,
        welcome_bonus=100,
        # The redeem cap (asking staff for the bill) has its own tests: not in MAX's way here.
        max_redeem_percent=100,
        bookform_url="https://n100555.yclients.com/",
    )


def texts(calls: list[Call]) -> str:
    return "\n".join(str((c.body or {}).get("text", "")) for c in calls)


def buttons(call: Call) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for attachment in (call.body or {}).get("attachments") or []:
        if attachment.get("type") == "inline_keyboard":
            for row in attachment["payload"]["buttons"]:
                found += row
    return found


async def said(fake: FakeMaxAPI, user: MaxUser, update: dict[str, Any], count: int = 1) -> str:
    """Push an update and wait for `count` messages to the user; their text."""
    after = len(fake.calls)
    fake.push(update)
    await until(lambda: len(fake.sent_to(user.user_id, after)) >= count, message="MAX answer")
    return texts(fake.sent_to(user.user_id, after))


async def pressed(fake: FakeMaxAPI, update: dict[str, Any]) -> Call:
    after = len(fake.calls)
    fake.push(update)
    return await fake.wait_for("/answers", after=after)


async def test_a_client_joins_by_deep_link_shares_a_verified_phone_and_gets_the_code_qr(
    aiohttp_client: ClientFactory,
    settings: Settings,
    fake: FakeMaxAPI,
) -> None:
    app = create_app(with_max(settings, fake))
    clock = VirtualClock()
    app[CLOCK] = clock.clock()
    http = await aiohttp_client(app)
    company = await salon()
    anna = MaxUser(5001, "Анна")
    await fake.wait_for("/me")
    await until(lambda: app[MAX_BOT] is not None and app[MAX_BOT].username, message="getMe")

    greeting = await said(fake, anna, anna.starts("salon-555"), count=2)
    assert "Салон Ромашка" in greeting
    ask = fake.sent_to(anna.user_id)[-1]
    assert [b["type"] for b in buttons(ask)] == ["request_contact"]

    # A forged hash, and someone else's card with a real one: neither is trusted.
    for card in (
        anna.shares_contact("79991234567", valid=False),
        anna.shares_contact("79991234567", owner=4242),
        anna.shares_contact("79991234567", hashed=False),
    ):
        refused = await said(fake, anna, card, count=2)
        assert "своим номером" in refused
    assert not await Client.filter(company_id=company.id).exists()
    assert (await MaxChat.get(user_id=anna.user_id)).phone is None

    joined = await said(fake, anna, anna.shares_contact("79991234567"), count=2)
    assert "Спасибо" in joined
    client = await Client.get(company_id=company.id, max_user_id=anna.user_id)
    assert client.phone == "+79991234567" and client.balance == 100
    assert client.last_channel == "max"
    # The menu rides along as message buttons (pressing one sends its label).
    menu = [b for b in buttons(fake.sent_to(anna.user_id)[-1]) if b["type"] == "message"]
    assert any("Бонусы" in b["text"] for b in menu)

    # The code as text and as a QR image (uploaded first, then sent by its token).
    fake.slow_images = True
    after = len(fake.calls)
    fake.push(anna.presses("code"))
    await until(lambda: len(fake.sent_to(anna.user_id, after)) == 2, message="the code")
    not_ready, sent = fake.sent_to(anna.user_id, after)
    assert not_ready.body == sent.body
    shown = codes.display(client.code)
    assert shown in sent.body["text"]
    (image,) = [a for a in sent.body["attachments"] if a["type"] == "image"]
    assert fake.image(image["payload"]["token"]) == qr_png(shown, company.title)
    # The press is answered (a toast: the code came as a new message); the first send of the
    # fresh image was "not ready" and went again after a pause.
    assert fake.calls_to("/answers")[-1].body == {"notification": "✓"}

    # The menu label, as its message button sends it: the balance with its history.
    balance = await said(fake, anna, anna.says("🎁 Бонусы"))
    assert "100" in balance and "приветственный бонус" in balance
    visits = await said(fake, anna, anna.says("🗓 Визиты"))
    assert "Визитов пока нет" in visits
    after = len(fake.calls)
    fake.push(anna.presses("book"))
    await until(lambda: fake.sent_to(anna.user_id, after), message="the booking link")
    (book,) = fake.sent_to(anna.user_id, after)
    links = [b for b in buttons(book) if b["type"] == "link"]
    assert links[0]["url"] == "https://n100555.yclients.com/"
    assert app[PART_STATES].failure("max") is None
    health = await (await http.get("/health")).json()
    assert health["parts"]["max"] == {"enabled": True, "state": "ok", "reason": "on"}


async def test_max_is_off_without_a_token_and_failing_with_a_refused_one(
    aiohttp_client: ClientFactory, settings: Settings, fake: FakeMaxAPI
) -> None:
    http = await aiohttp_client(create_app(settings))
    part = (await (await http.get("/health")).json())["parts"]["max"]
    assert part == {
        "enabled": False,
        "state": "off",
        "reason": "off: MAX_BOT_TOKEN not set (the MAX bot)",
    }
    assert (await http.post("/webhook/max", json={"update_type": "bot_started"})).status == 404

    wrong = settings.model_copy(
        update={"max_bot_token": SecretStr("not-the-token"), "max_api_url": fake.url}
    )
    app = create_app(wrong)
    http = await aiohttp_client(app)
    await until(lambda: app[PART_STATES].failure("max") is not None, message="refused")
    part = (await (await http.get("/health")).json())["parts"]["max"]
    assert part["state"] == "failing" and "MAX_BOT_TOKEN" in part["reason"]
    assert "verify.token" in part["error"]


async def test_staff_redeem_in_max_debits_once_on_a_double_tap_and_a_blocked_client_is_marked(
    aiohttp_client: ClientFactory, settings: Settings, fake: FakeMaxAPI
) -> None:
    app = create_app(with_max(settings, fake))
    clock = VirtualClock()
    app[CLOCK] = clock.clock()
    await aiohttp_client(app)
    company = await salon()
    anna, olga = MaxUser(5001, "Анна"), MaxUser(6001, "Ольга")
    await said(fake, anna, anna.starts("salon-555"), count=2)
    await said(fake, anna, anna.shares_contact("79991234567"), count=2)
    client = await Client.get(company_id=company.id, max_user_id=anna.user_id)
    await ledger.accrue(client.id, 400, "seed")
    # Staff are known by the phone MAX vouched for; the role is read on every action.
    await Staff.create(company=company, phone="+79990000001", name="Ольга", role=StaffRole.STAFF)
    await said(fake, olga, olga.starts("salon-555"), count=2)
    # Not staff before MAX vouches for her phone.
    refused = await said(fake, olga, olga.says(f"/redeem {codes.display(client.code)} 150"))
    assert "Анн" not in refused
    await said(fake, olga, olga.shares_contact("79990000001"), count=2)

    ask = await said(fake, olga, olga.says(f"/redeem {codes.display(client.code)} 150"))
    assert "у Анны" in ask  # «Списать 150 бонусов у Анны?»
    (confirm,) = [
        b for b in buttons(fake.sent_to(olga.user_id)[-1]) if b["payload"].startswith("rc:")
    ]
    # Two taps on Confirm, as a nervous thumb makes them.
    first = await pressed(fake, olga.presses(confirm["payload"]))
    second = await pressed(fake, olga.presses(confirm["payload"]))
    assert "150" in first.body["message"]["text"]
    assert "message" in second.body
    redemptions = await LedgerEntry.filter(client_id=client.id, kind=LedgerKind.REDEMPTION)
    assert [e.amount for e in redemptions] == [-150]
    # Anna is told in MAX, where she talked last.
    await until(lambda: "150" in texts(fake.sent_to(anna.user_id)[-1:]), message="notice")

    # Anna blocks the bot: the next notice meets 403 chat.denied and marks her unreachable.
    fake.blocked.add(anna.user_id)
    await said(fake, olga, olga.says(f"/redeem {codes.display(client.code)} 10"))
    (confirm,) = [
        b for b in buttons(fake.sent_to(olga.user_id)[-1]) if b["payload"].startswith("rc:")
    ]
    await pressed(fake, olga.presses(confirm["payload"]))

    async def unreachable() -> bool:
        return "max" in (await Client.get(id=client.id)).unreachable

    await until(unreachable, message="marked unreachable")
    # Writing again lifts it; stopping the bot sets it again.
    fake.blocked.discard(anna.user_id)
    await said(fake, anna, anna.says("🎁 Бонусы"))
    assert not await unreachable()
    fake.push(anna.stops())
    await until(unreachable, message="bot_stopped marks unreachable")


async def test_a_429_is_waited_out_on_the_clock_and_the_webhook_checks_its_secret(
    aiohttp_client: ClientFactory, settings: Settings, fake: FakeMaxAPI
) -> None:
    hooked = with_max(
        settings,
        fake,
        max_mode="webhook",
        max_webhook_secret=SecretStr(SECRET),
        public_base_url="http://127.0.0.1:8443",
    )
    app = create_app(hooked)
    clock = VirtualClock()
    app[CLOCK] = clock.clock()
    http = await aiohttp_client(app)
    await salon()
    subscribe = await fake.wait_for("/subscriptions", lambda c: c.method == "POST")
    assert subscribe.body["url"] == "http://127.0.0.1:8443/webhook/max"
    assert subscribe.body["secret"] == SECRET

    anna = MaxUser(5001)
    update = anna.starts("salon-555")
    assert (await http.post("/webhook/max", json=update)).status == 403
    wrong = {"X-Max-Bot-Api-Secret": "x" * len(SECRET)}
    assert (await http.post("/webhook/max", json=update, headers=wrong)).status == 403
    good = {"X-Max-Bot-Api-Secret": SECRET}
    assert (await http.post("/webhook/max", data=b"{nope", headers=good)).status == 400
    assert (await http.post("/webhook/max", json=[1], headers=good)).status == 400
    assert not fake.calls_to("/messages")

    # MAX is busy twice, saying when to come back: the client waits that long, then sends.
    fake.busy, fake.retry_after = 2, 3
    before = len(clock.slept)
    assert (await http.post("/webhook/max", json=update, headers=good)).status == 200
    # (The visit loop's dispatcher idles on the same clock: only the 429 waits count here.)
    assert [d for d in clock.slept[before:] if d == 3.0] == [3.0, 3.0]
    sent = fake.sent_to(anna.user_id)
    assert len(sent) == 4 and "Салон Ромашка" in texts(sent)  # two 429s, then both replies
    # The same update delivered again (a webhook retry) is answered once.
    assert (await http.post("/webhook/max", json=update, headers=good)).status == 200
    assert len(fake.sent_to(anna.user_id)) == 4


async def test_the_owner_sees_the_max_link_and_the_poster_carries_its_qr(
    aiohttp_client: ClientFactory, settings: Settings, fake: FakeMaxAPI, tmp_path: Path
) -> None:
    update = {"max_bot_token": SecretStr(TOKEN), "max_api_url": fake.url}
    async with open_bench(aiohttp_client, settings, settings_update=update) as bench:
        app = bench.client.app
        await until(lambda: app[MAX_BOT] is not None and app[MAX_BOT].username, message="getMe")
        token = await activated_salon(bench, 533)
        page = await (await bench.client.get(f"/marketplace/onboarding?token={token}")).text()
        link = f"https://max.ru/{MAX_USERNAME}?start=salon-533"
        assert f'id="max-link" href="{link}"' in page
        assert 'id="telegram-link"' in page and 'id="poster"' in page
        poster = await bench.client.get(f"/marketplace/poster.png?token={token}")
        assert poster.status == 200 and poster.content_type == "image/png"
        png = await poster.read()
        assert Image.open(io.BytesIO(png)).size == (1748, 2480)
        if shutil.which("zbarimg"):
            # Every code on the poster, the MAX one among them, reads back as its link.
            found = decode_all_qr(png, tmp_path)
            assert link in found and f"https://t.me/{BOT}?start=salon-533" in found


def decode_all_qr(png: bytes, tmp_path: Path) -> set[str]:
    image = tmp_path / "poster.png"
    image.write_bytes(png)
    done = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(image)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return set(done.stdout.split())
