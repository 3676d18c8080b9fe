"""The demo (`salonbot demo`, web.demo) through its JSON API: the salon comes from the demo
YClients over the real client and sync, the visitor talks to the same dialog as a client and
as staff, and what the salon does in YClients reaches the bot as webhooks, the ledger and a
notice in the web chat."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.dialog import Reply
from bot.dialog.formats import percent
from bot.outbound import Delivery, Outbound
from bot.qr import qr_png
from core import codes
from core.models import (
    Booking,
    BookingStatus,
    Client,
    Company,
    InboxEvent,
    LedgerEntry,
    LedgerKind,
    Staff,
    StaffRole,
)
from core.settings import Settings
from core.yclients import Forbidden, Unauthorized, YClientsClient
from tests.web.demo_support import open_demo
from tests.web.onboarding_support import ClientFactory, free_port
from web.app import create_app
from web.demo import catalogue
from web.demo.yclients import DemoYClients
from web.keys import WEB_CHAT


def _labels(reply: dict[str, Any]) -> list[str]:
    return [label for row in reply.get("menu") or [] for label in row]


async def test_visitor_joins_sees_the_code_and_a_completed_visit_brings_the_bonus(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with open_demo(aiohttp_client, settings) as demo:
        # The salon came through the production path: the client, the sync, the catalogue.
        salon = await Company.get(yclients_id=catalogue.SALON_ID)
        assert salon.title == catalogue.TITLE and salon.integration_status == "active"
        assert len(salon.catalogue["services"]) == len(catalogue.SERVICES)
        assert await Booking.filter(company_id=salon.id).count() == len(demo.yclients.records)
        client = await Client.get(company_id=salon.id, phone=catalogue.CLIENT_PHONE)
        # The visit four days ago earned its 5 % at the first sync.
        assert client.balance == 5000 * 5 // 100

        [welcome] = await demo.say("client", "/start")
        assert welcome["text"] == (
            f"Добро пожаловать! Это {catalogue.TITLE}: здесь можно записаться и копить бонусы."
            f"\n{percent(5)} от каждого визита возвращается вам бонусами. 1 бонус = 1 ₽. "
            f"Бонусами можно оплатить до {percent(30)} счёта.\nВаш баланс: 250 бонусов."
        )
        assert "🔑 Мой код" in _labels(welcome)

        [code] = await demo.say("client", "🔑 Мой код")
        shown = codes.display(client.code)
        assert shown in code["text"]
        assert (
            code["image"]
            == "data:image/png;base64," + base64.b64encode(qr_png(shown, catalogue.TITLE)).decode()
        )

        demo.seen = 0
        log = await demo.messages()
        assert [(m["role"], m["from"]) for m in log] == [
            ("client", "visitor"),
            ("client", "bot"),
            ("client", "visitor"),
            ("client", "bot"),
        ]

        # The salon marks today's visit as attended in YClients.
        target = demo.yclients.next_visit(catalogue.CLIENT_PHONE)
        assert target is not None
        answer = await demo.act("complete")
        assert answer["ok"] is True and answer["record_id"] == target["id"]
        assert answer["visit"]["status"] == "came"
        assert answer["next_visit"]["record_id"] != target["id"]

        notice = await demo.notice("client")
        assert notice["text"] == (
            "Спасибо за визит! Начислено бонусов: 125.\nВаш баланс: 375 бонусов."
        )
        booking = await Booking.get(company_id=salon.id, yclients_record_id=target["id"])
        assert booking.status is BookingStatus.COMPLETED
        accrual = await LedgerEntry.get(booking_id=booking.id, kind=LedgerKind.ACCRUAL)
        assert accrual.amount == 125
        # It came as YClients tells it: a record webhook, stored in the inbox.
        assert await InboxEvent.filter(source="yclients").count() == 1
        await Client.get(id=client.id).only("id", "last_channel")
        assert (await Client.get(id=client.id)).last_channel == "web"

        [balance] = await demo.say("client", "🎁 Бонусы")
        assert "Ваш баланс: 375 бонусов" in balance["text"]
        [again] = await demo.say("client", "/start")
        assert again["text"].startswith("С возвращением!")


async def test_staff_redeem_by_the_clients_code_and_the_client_is_told(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with open_demo(aiohttp_client, settings) as demo:
        staff = await Staff.get(phone=catalogue.STAFF_PHONE)
        assert staff.role is StaffRole.ADMIN and staff.active
        await demo.say("client", "/start")
        client = await Client.get(phone=catalogue.CLIENT_PHONE)

        [hello] = await demo.say("staff", "/start")
        assert "💳 Списать бонусы" in _labels(hello)
        await demo.say("staff", "💳 Списать бонусы")
        await demo.say("staff", codes.display(client.code))
        replies = await demo.say("staff", "100")
        buttons = [b for r in replies for b in r["buttons"]]
        assert "✅ Подтвердить" in buttons, replies
        done = await demo.say("staff", "✅ Подтвердить")
        assert any("100" in r["text"] for r in done), done

        notice = await demo.notice("client")
        assert notice["text"] == "Списано бонусов: 100.\nВаш баланс: 150 бонусов."
        assert (await Client.get(id=client.id)).balance == 150


async def test_the_salon_moves_and_cancels_the_next_visit_by_webhook(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with open_demo(aiohttp_client, settings) as demo:
        await demo.say("client", "/start")
        first = demo.yclients.next_visit(catalogue.CLIENT_PHONE)
        assert first is not None
        before = datetime.fromisoformat(first["datetime"])
        moved = await demo.act("move")
        assert moved["record_id"] == first["id"]
        # The visit loop tells the client, through the one Outbound, in the web chat.
        notice = await demo.notice("client")
        assert notice["text"].startswith(f"{catalogue.TITLE}: ваша запись изменилась."), notice

        async def booking() -> Booking:
            return await Booking.get(yclients_record_id=first["id"])

        deadline = time.monotonic() + 20  # a hang guard, not a speed bound
        while (await booking()).visit_at != before + timedelta(days=1):
            assert time.monotonic() < deadline, "the move never reached the booking"
            await asyncio.sleep(0.05)

        cancelled = await demo.act("cancel")
        assert cancelled["record_id"] == first["id"] and cancelled["visit"]["status"] == "cancelled"
        while (await booking()).status is not BookingStatus.CANCELLED:
            assert time.monotonic() < deadline, "the cancellation never reached the booking"
            await asyncio.sleep(0.05)

        # With every visit acted on, the salon books the client a new one first.
        for _ in range(3):
            await demo.act("cancel")
        again = await demo.act("complete")
        assert again["record_id"] not in {first["id"]}
        assert again["record_id"] in demo.yclients.records


async def test_outbound_sends_to_the_web_chat_as_one_of_its_channels(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    """What the visit loop and the admins' alerts will send (bot.outbound) reaches the demo's
    people in the web chat; a client who never wrote there is not its to reach."""
    async with open_demo(aiohttp_client, settings) as demo:
        await demo.say("client", "/start")
        await demo.messages()
        client = await Client.get(phone=catalogue.CLIENT_PHONE)
        channel = demo.client.app[WEB_CHAT]
        outbound = Outbound({channel.name: channel})

        def reminder(locale: str) -> list[Reply]:
            return [Reply(f"reminder in {locale}")]

        assert await outbound.to_client(client, reminder) is Delivery.SENT
        assert await outbound.to_admins(client.company_id, reminder) == 1
        other = await Client.get(phone=catalogue.CLIENTS[0][1])
        assert await outbound.to_client(other, reminder) is Delivery.NO_CHAT
        sent = [(m["role"], m["text"], m.get("notice")) for m in await demo.messages()]
        assert sent == [("client", "reminder in ru", True), ("staff", "reminder in ru", True)]


async def test_the_demo_yclients_checks_tokens_as_yclients_does() -> None:
    """The real client meets the demo's YClients as it meets YClients: a wrong partner token
    is a 401, records without the user token a 403, and with both every record is there."""
    yclients = DemoYClients()
    await yclients.start()
    try:
        async with YClientsClient(yclients.url, "wrong-partner-token", max_retries=0) as bad:
            with pytest.raises(Unauthorized):
                await bad.company(catalogue.SALON_ID)
        async with YClientsClient(yclients.url, yclients.partner_token, max_retries=0) as partner:
            assert (await partner.company(catalogue.SALON_ID))["title"] == catalogue.TITLE
            with pytest.raises(Forbidden):
                await partner.record(catalogue.SALON_ID, next(iter(yclients.records)))
        async with YClientsClient(
            yclients.url, yclients.partner_token, yclients.user_token, max_retries=0
        ) as user:
            records = await user.records(catalogue.SALON_ID, with_deleted=True, count=10)
            assert sorted(r["id"] for r in records) == sorted(yclients.records)
            assert len(await user.services(catalogue.SALON_ID)) == len(catalogue.SERVICES)
    finally:
        await yclients.close()


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/demo/api/message", b'{"role": "client", "text": ', "invalid JSON"),
        ("/demo/api/message", b"[]", "JSON object"),
        ("/demo/api/message", b'{"role": "owner", "text": "hi"}', "role"),
        ("/demo/api/message", b'{"role": "client", "text": "  "}', "text"),
        ("/demo/api/message", b'{"role": "client", "text": 5}', "text"),
        ("/demo/api/yclients", b"not json", "invalid JSON"),
        ("/demo/api/yclients", b'{"action": "delete"}', "action"),
        ("/demo/api/yclients", b"{}", "action"),
    ],
)
async def test_malformed_requests_get_a_400_that_says_why(
    aiohttp_client: ClientFactory, settings: Settings, path: str, body: bytes, error: str
) -> None:
    async with open_demo(aiohttp_client, settings) as demo:
        response = await demo.client.post(
            path, data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400
        answer = await response.json()
        assert answer["ok"] is False and error in answer["error"]
        for query in ("after=x", "after=-1", "wait=100", "wait=nan"):
            bad = await demo.client.get(f"/demo/api/messages?{query}")
            assert bad.status == 400, query


async def test_the_page_names_the_first_steps_under_a_strict_csp(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async with open_demo(aiohttp_client, settings) as demo:
        response = await demo.client.get("/", headers={"Accept-Language": "ru"})
        assert response.status == 200
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        page = await response.text()
        assert "«▶️ Начать»" in page and "«🔑 Мой код»" in page
        booking = await demo.client.get("/demo/booking")
        assert booking.status == 200 and "Женская стрижка" in await booking.text()
        salon = await Company.get(yclients_id=catalogue.SALON_ID)
        assert salon.bookform_url == f"{demo.base_url}/demo/booking"


async def test_serve_has_no_demo(aiohttp_client: ClientFactory, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    home = await client.get("/")
    assert home.status == 200 and "/demo/api" not in await home.text()
    refused = await client.post("/demo/api/message", json={"role": "client", "text": "/start"})
    assert refused.status in (404, 405)
    assert not await Company.exists()


async def test_salonbot_demo_prints_the_url_to_open(tmp_path: Path) -> None:
    """The command as a newcomer runs it (`make run`): its own SQLite under DATA_DIR whatever
    DATABASE_URL says (a real salon's database is never touched), the URL printed, the page
    and the salon there, Ctrl-C ends it."""
    port = free_port()
    elsewhere = tmp_path / "real.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "YCLIENTS_"))} | {
        "DATA_DIR": str(tmp_path / "data"),
        "HTTP_PORT": "1",
        "DATABASE_URL": f"sqlite://{elsewhere}",
    }
    env.pop("SECRET_KEY", None)
    salonbot = Path(sys.executable).with_name("salonbot")
    proc = await asyncio.create_subprocess_exec(
        str(salonbot),
        "demo",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)  # a hang guard
        url = f"http://127.0.0.1:{port}/"
        assert url in line.decode(), line
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 120  # a hang guard, not a speed bound
            while True:
                try:
                    page = await http.get(url, timeout=5)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the demo never answered"
                    await asyncio.sleep(0.2)
            assert page.status_code == 200 and catalogue.TITLE in page.text
            answer = await http.post(
                f"{url}demo/api/message", json={"role": "client", "text": "/start"}, timeout=10
            )
            assert catalogue.TITLE in answer.json()["replies"][0]["text"]
        assert (tmp_path / "data" / "demo.sqlite3").exists() and not elsewhere.exists()
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
