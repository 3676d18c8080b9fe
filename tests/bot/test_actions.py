"""The typed vocabulary of button actions (bot.dialog.actions): one class builds and matches a
button, every packed action fits Telegram's callback data, and the wire format of keyboards
sent before it still reads the same."""

from __future__ import annotations

from dataclasses import fields

import pytest

from bot.dialog import CONSOLE, TELEGRAM, Session, actions
from bot.dialog.actions import MAX_BYTES, Action
from core import salon_settings
from core.i18n import LOCALES
from core.models import Company, StaffRole
from tests.bot.conftest import Harness, join, said
from tests.fakes.telegram import Person

ANNA = Person(7001, "Анна")
LARGEST_ID = 2**63 - 1  # a bigint primary key at its end


def _longest_token() -> str:
    """Session.turn_token's both shapes: derived from a message, and random without one."""
    derived = Session(TELEGRAM, {}, message_ref="tg:" + "9" * 200).turn_token("redeem")
    random = Session(CONSOLE, {}).turn_token("redeem")
    return max(derived, random, key=len)


def _longest(kind: type[Action]) -> Action:
    """The action with the longest realistic value in every field."""
    values: dict[str, object] = {}
    for f in fields(kind):
        if f.name == "locale":
            values[f.name] = max(LOCALES, key=len)
        elif f.name == "token":
            values[f.name] = _longest_token()
        elif f.name == "key":
            values[f.name] = max(salon_settings.KEYS, key=len)
        elif f.name == "role":
            values[f.name] = max((r.value for r in StaffRole), key=len)
        elif f.name in ("choice", "answer"):
            # A word: the longest the dialog uses is a few letters; 16 leaves room.
            values[f.name] = "w" * 16
        else:
            values[f.name] = LARGEST_ID
    return kind(**values)


@pytest.mark.parametrize("kind", actions.kinds(), ids=lambda k: k.__name__)
def test_every_action_fits_telegram_callback_data_and_reads_back(kind: type[Action]) -> None:
    action = _longest(kind)
    packed = action.pack()
    assert len(packed.encode()) <= MAX_BYTES == 64
    assert actions.parse(packed) == action


def test_tokens_are_sixteen_characters() -> None:
    assert len(_longest_token()) == 16


# The data of buttons as they were sent before bot.dialog.actions existed.
OLD_KEYBOARDS = {
    "book": actions.Book(),
    "bal": actions.Balance(),
    "visits": actions.Visits(),
    "code": actions.MyCode(),
    "help": actions.Help(),
    "lang": actions.Language(),
    "lang:en": actions.Language("en"),
    "hist:1234": actions.History(1234),
    "salon:7": actions.PickSalon(7),
    "rc:Ab-_c1d2E3f4G5h6": actions.ConfirmRedeem("Ab-_c1d2E3f4G5h6"),
    "rx:Ab-_c1d2E3f4G5h6": actions.CancelRedeem("Ab-_c1d2E3f4G5h6"),
    "aj:42": actions.AdjustClient(42),
    "stop": actions.Stop(),
}


@pytest.mark.parametrize("data", OLD_KEYBOARDS)
def test_the_wire_format_of_older_keyboards_is_kept(data: str) -> None:
    assert actions.parse(data) == OLD_KEYBOARDS[data]
    assert OLD_KEYBOARDS[data].pack() == data


@pytest.mark.parametrize(
    "data",
    [
        "",
        "noop",
        "hist",
        "hist:x",
        "hist:-1",
        "aj:9223372036854775808",
        "salon:99999999999999999999",
        "rc:",
        "rc:a:b",
        "book:1",
        "lang:en:ru",
        "rc:" + "a" * 70,
        "rc:токен",
    ],
)
def test_anything_else_is_no_action(data: str) -> None:
    assert actions.parse(data) is None


def test_packing_refuses_what_would_not_read_back() -> None:
    with pytest.raises(ValueError):
        actions.ConfirmRedeem("a:b").pack()
    with pytest.raises(ValueError):
        actions.ConfirmRedeem("x" * 40).pack()
    with pytest.raises(TypeError):

        class Twice(actions.Action):
            prefix = "rc"


async def test_a_button_of_an_older_keyboard_still_works_in_telegram(
    tg: Harness, salon: Company
) -> None:
    await join(tg, ANNA, salon, "+79991234567")
    # "bal" is built by no button today; a keyboard sent by an older version has it.
    assert "Ваш баланс" in said(await tg.press(ANNA, "bal"))
    assert "Выберите язык" in said(await tg.press(ANNA, "lang"))
    assert "больше не действует" in said(await tg.press(ANNA, "noop"))


async def test_an_id_beyond_the_database_is_answered_not_raised(
    tg: Harness, salon: Company
) -> None:
    await join(tg, ANNA, salon, "+79991234567")
    for data in ("salon:99999999999999999999", "hist:9999999999999999999"):
        assert "больше не действует" in said(await tg.press(ANNA, data)), data
