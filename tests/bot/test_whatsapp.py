"""The WhatsApp adapter's own parts: replies as numbered text, what counts as a message to
answer, and the sending manners (seen, typing, pause, rate limit, failures never retried)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot.dialog import Button, Image, Reply
from bot.dialog.actions import CancelRedeem, ConfirmRedeem, Language, Stop
from bot.dialog.menu import main_menu
from bot.whatsapp.channel import Incoming
from bot.whatsapp.outbox import Manners, Outbox, Outgoing, RateLimiter
from bot.whatsapp.render import render
from core.models import Company, WhatsAppChat
from core.whatsapp import GatewayUnavailable
from tests.bot.conftest import make_salon


class RecordingGateway:
    """The send side of the gateway, recording each call; `fail` makes sends fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.fail = False

    async def send_text(
        self, session: str, chat_id: str, text: str, reply_to: str | None = None
    ) -> str:
        self.calls.append(("text", chat_id, text))
        if self.fail:
            raise GatewayUnavailable("POST /api/sendText: the gateway did not answer in time")
        return "id"

    async def send_image(
        self,
        session: str,
        chat_id: str,
        png_bytes: bytes,
        filename: str = "code.png",
        caption: str | None = None,
    ) -> str:
        self.calls.append(("image", chat_id, caption))
        return "id"

    async def send_seen(self, session: str, chat_id: str, message_id: str) -> None:
        self.calls.append(("seen", chat_id, message_id))

    async def start_typing(self, session: str, chat_id: str) -> None:
        self.calls.append(("typing", chat_id, True))

    async def stop_typing(self, session: str, chat_id: str) -> None:
        self.calls.append(("typing", chat_id, False))


# --- rendering ----------------------------------------------------------------------------------


def test_the_menu_is_numbered_and_staff_see_their_commands() -> None:
    out = render([Reply("Привет", menu=main_menu("ru"))], "ru")
    (message,) = out.messages
    assert message.text.startswith("Привет\n\n1 — 📅 Записаться\n2 — 🎁 Бонусы\n3 — 🔑 Мой код")
    assert message.text.endswith("4 — 🗓 Визиты\n5 — 🌐 Язык\n6 — 🔔 Напоминания\n0 — ☰ Меню")
    assert out.options == [] and out.confirm is None
    staff = render([Reply("Hi", menu=main_menu("en", staff=True))], "en").messages[0].text
    assert "For staff: “redeem CODE AMOUNT”" in staff and "1 — 📅 Book" in staff


def test_choices_are_numbered_links_written_out_and_a_redeem_asks_for_yes() -> None:
    choose = Reply(
        "Выберите язык:",
        buttons=(
            (Button("Русский", action=Language("ru")), Button("English", action=Language("en"))),
        ),
    )
    out = render([choose], "ru")
    assert out.options == ["lang:ru", "lang:en"]
    assert out.messages[0].text == "Выберите язык:\n\n1 — Русский\n2 — English\n0 — ☰ Меню"

    book = Reply("Book:", buttons=((Button("📅 Open", url="https://n1.yclients.com/"),),))
    assert render([book], "en").messages[0].text == (
        "Book:\n📅 Open: https://n1.yclients.com/\n\n0 — ☰ Menu"
    )

    confirm = Reply(
        "Redeem 100?",
        buttons=(
            (Button("✅", action=ConfirmRedeem("tok")), Button("✖️", action=CancelRedeem("tok"))),
        ),
    )
    out = render([confirm], "ru")
    assert out.confirm == "tok" and out.options == []
    assert "Ответьте «да»" in out.messages[0].text and "«нет»" in out.messages[0].text

    step = Reply("Пришлите код клиента.", buttons=((Button("✖️ Отмена", action=Stop()),),))
    assert render([step], "ru").messages[0].text == "Пришлите код клиента.\n0 — ✖️ Отмена"


def test_an_image_keeps_its_text_as_the_caption() -> None:
    out = render([Reply("Ваш код: 7KQ", image=Image(b"png", "code-7KQ.png"))], "ru")
    (message,) = out.messages
    assert message.png == b"png" and message.filename == "code-7KQ.png"
    assert message.text == "Ваш код: 7KQ\n\n0 — ☰ Меню"


@pytest.mark.parametrize(
    ("sender", "extra", "answered"),
    [
        ("79991234567@c.us", {}, True),
        ("251452364652653@lid", {}, True),
        ("79991234567@c.us", {"fromMe": True}, False),
        ("120363025246125486@g.us", {}, False),
        ("status@broadcast", {}, False),
        ("120363025246125487@newsletter", {}, False),
        ("79991234567@c.us", {"id": None}, False),
    ],
)
def test_what_is_answered(sender: str, extra: dict[str, Any], answered: bool) -> None:
    payload = {"id": "false_x_3EB0", "from": sender, "fromMe": False, "body": " 2 ", **extra}
    found = Incoming.parse({"session": "salon-1", "payload": payload})
    assert (found is not None) is answered
    if found is not None:
        assert found.chat_id == sender and found.text == "2"


# --- manners ------------------------------------------------------------------------------------


async def test_an_answer_is_seen_typed_paused_and_sent_in_order() -> None:
    gateway = RecordingGateway()
    outbox = Outbox(gateway, Manners(pause=0.1, rate=0))  # type: ignore[arg-type]
    started = time.monotonic()
    outbox.answer(1, "salon-1", "7@c.us", "m1", [Outgoing("one"), Outgoing("two", b"png")])
    outbox.answer(1, "salon-1", "7@c.us", "m2", [Outgoing("three")])
    await outbox.idle()
    assert time.monotonic() - started >= 0.05 + 0.025 + 0.05
    assert gateway.calls == [
        ("seen", "7@c.us", "m1"),
        ("typing", "7@c.us", True),
        ("text", "7@c.us", "one"),
        ("image", "7@c.us", "two"),
        ("typing", "7@c.us", False),
        ("seen", "7@c.us", "m2"),
        ("typing", "7@c.us", True),
        ("text", "7@c.us", "three"),
        ("typing", "7@c.us", False),
    ]


async def test_without_a_pause_there_is_no_typing_and_chats_go_side_by_side() -> None:
    gateway = RecordingGateway()
    outbox = Outbox(gateway, Manners(pause=0, rate=0))  # type: ignore[arg-type]
    for n in range(20):
        outbox.answer(1, "salon-1", f"{n}@c.us", f"m{n}", [Outgoing(f"t{n}")])
    await outbox.idle()
    assert not [c for c in gateway.calls if c[0] == "typing"]
    assert sorted(c[2] for c in gateway.calls if c[0] == "text") == sorted(
        f"t{n}" for n in range(20)
    )


class SteppingClock:
    """Time that moves only by the limiter's sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        self.now += delay


async def test_the_rate_limit_spaces_a_sessions_messages_after_a_burst() -> None:
    time_ = SteppingClock()
    # One every 0.125 s (a binary fraction, so the fake time adds up exactly), 2 at once.
    limiter = RateLimiter(rate_per_minute=480, burst=2, clock=time_.clock, sleep=time_.sleep)
    for _ in range(4):
        await limiter.wait("salon-1")
    # The burst went at once; the 3rd and 4th each waited for a token.
    assert time_.slept == [0.125, 0.125]
    await limiter.wait("salon-2")  # another salon has its own bucket: no wait
    assert time_.slept == [0.125, 0.125]
    unlimited = RateLimiter(0, 1, clock=time_.clock, sleep=time_.sleep)  # 0: no limit
    for _ in range(10):
        await unlimited.wait("salon-1")
    assert time_.slept == [0.125, 0.125]


async def test_a_failed_send_is_recorded_never_retried_and_the_next_answer_goes(
    salon: Company,
) -> None:
    chat = await WhatsAppChat.create(company=salon, chat_id="7@c.us")
    gateway = RecordingGateway()
    results: list[tuple[str, bool]] = []
    outbox = Outbox(
        gateway,  # type: ignore[arg-type]
        Manners(pause=0, rate=0),
        on_result=lambda kind, ok: results.append((kind, ok)),
    )
    gateway.fail = True
    outbox.answer(salon.id, "salon-1", "7@c.us", "m1", [Outgoing("one"), Outgoing("two")])
    await outbox.idle()
    # One attempt; the second message is dropped with it rather than sent out of order.
    assert [c for c in gateway.calls if c[0] == "text"] == [("text", "7@c.us", "one")]
    assert results == [("reply", False), ("reply", False)]
    stored = await WhatsAppChat.get(id=chat.id)
    assert stored.send_failed_at is not None and "GatewayUnavailable" in (stored.send_error or "")

    gateway.fail = False
    assert await outbox.send(salon.id, "salon-1", "7@c.us", [Outgoing("notice")]) is not None
    assert gateway.calls[-1] == ("text", "7@c.us", "notice")
    assert results[-1] == ("notice", True)


async def test_closing_drops_what_is_handed_over_afterwards(orm: str) -> None:
    await make_salon()
    gateway = RecordingGateway()
    outbox = Outbox(gateway, Manners(pause=0, rate=0))  # type: ignore[arg-type]
    await outbox.close(grace=0.1)
    outbox.answer(1, "salon-1", "7@c.us", "m1", [Outgoing("late")])
    await outbox.idle()
    assert gateway.calls == []
