"""Medium 6: log lines named people. The registration redirect's mismatch warning printed the
whole signed `MarketplaceUser` (name, e-mail, phone); WhatsApp lines printed full phones and
chat ids. They now log ids, and the handler's redaction is the second guard."""

from __future__ import annotations

import logging

import pytest

from bot.whatsapp.outbox import Manners, Outbox, Outgoing
from core.models import WhatsAppChat
from core.settings import Settings
from tests.bot.conftest import make_salon
from tests.bot.test_whatsapp import RecordingGateway
from tests.web.onboarding_support import OWNER, ClientFactory, open_bench


async def test_the_salon_mismatch_warning_logs_the_user_id_not_the_user(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_bench(aiohttp_client, settings) as bench:
        bench.yc.add_company(501, title="Салон 501")
        caplog.set_level(logging.WARNING, logger="web.marketplace")
        response = await bench.redirect(501, user={**OWNER, "salon_id": 777})
        assert response.status == 403
    [line] = [r.getMessage() for r in caplog.records if r.name == "web.marketplace"]
    assert "not in user 123456's signed list" in line
    # caplog sees the record before any redaction: the call itself must not carry them.
    for personal in (OWNER["email"], OWNER["name"], OWNER["phone"], "owner@"):
        assert str(personal) not in line


async def test_a_failed_whatsapp_send_logs_a_masked_chat_id(
    orm: str, caplog: pytest.LogCaptureFixture
) -> None:
    salon = await make_salon()
    await WhatsAppChat.create(company=salon, chat_id="79001234567@c.us")
    gateway = RecordingGateway()
    gateway.fail = True
    outbox = Outbox(gateway, Manners(pause=0, rate=0))  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="bot.whatsapp.outbox")
    outbox.answer(salon.id, "salon-1", "79001234567@c.us", None, [Outgoing("hi")])
    await outbox.idle()
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "to ***4567@c.us via salon-1 not sent" in line
    assert "9001234567" not in line
