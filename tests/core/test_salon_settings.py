"""The salon's settings: one validator, one writer with an audit row per change, and the CLI."""

from __future__ import annotations

import asyncio
from datetime import time
from pathlib import Path

import pytest

from core import db, salon_settings
from core.models import Company, SettingChange
from core.salon_settings import SettingError
from tests.web.test_bot_cli import env_for
from tests.web.test_sync_api_and_cli import run_cli


@pytest.mark.parametrize(
    ("key", "text", "stored"),
    [
        ("accrual_percent", "7", 7),
        ("welcome_bonus", "300", 300),
        ("reminder_day_before_at", "9:05", "09:05"),
        ("reminder_day_before_at", "OFF", "off"),
        ("reminder_hours_before", "0", 0),
        ("reminder_hours_before", "off", 0),
        ("quiet_hours", "22:00 - 8:30", "22:00-08:30"),
        ("review_delay_hours", "off", None),
        ("review_delay_hours", "3", 3),
        ("review_url", "https://yandex.ru/maps/org/1", "https://yandex.ru/maps/org/1"),
        ("review_url", "off", ""),
        ("digest_at", "Friday 19:00", "fri 19:00"),
    ],
)
def test_values_are_stored_in_one_canonical_form(key: str, text: str, stored: object) -> None:
    assert salon_settings.parse(key, text) == stored


@pytest.mark.parametrize(
    ("key", "text", "says"),
    [
        ("accrual_percent", "101", "from 0 to 100"),
        ("accrual_percent", "-1", "from 0 to 100"),
        ("reminder_day_before_at", "25:00", "like 18:00"),
        ("quiet_hours", "21:00", "like 21:00-09:00"),
        ("quiet_hours", "09:00-09:00", "like 21:00-09:00"),
        ("review_url", "javascript:alert(1)", "http(s) link"),
        ("digest_at", "someday 10:00", "like mon 10:00"),
        ("colour", "red", "unknown setting"),
    ],
)
def test_a_wrong_value_gets_one_sentence_naming_the_key(key: str, text: str, says: str) -> None:
    with pytest.raises(SettingError) as caught:
        salon_settings.parse(key, text)
    message = str(caught.value)
    assert says in message and (key in message) and "\n" not in message


async def test_change_writes_all_or_nothing_and_an_audit_row_per_key(orm: str) -> None:
    company = await Company.create(yclients_id=1, hook_token="h" * 20)
    with pytest.raises(SettingError):
        await salon_settings.change(
            company, {"accrual_percent": "8", "quiet_hours": "x"}, actor="t"
        )
    assert (await Company.get(id=company.id)).accrual_percent == 5
    changes = await salon_settings.change(
        company,
        {"accrual_percent": "8", "review_delay_hours": "off", "welcome_bonus": "0"},
        actor="staff:3",
    )
    assert [(c.key, c.old, c.new) for c in changes] == [
        ("accrual_percent", "5", "8"),
        ("review_delay_hours", "2", "off"),
    ]
    stored = await Company.get(id=company.id)
    assert stored.accrual_percent == 8 and stored.review_delay_hours is None
    audit = await SettingChange.filter(company_id=company.id).order_by("id")
    assert [(a.actor, a.key, a.new_value) for a in audit] == [
        ("staff:3", "accrual_percent", "8"),
        ("staff:3", "review_delay_hours", "off"),
    ]
    loop = salon_settings.loop(stored)
    assert loop.review_delay_hours is None and loop.day_before_at == time(18, 0)
    assert loop.quiet == (time(21, 0), time(9, 0)) and loop.digest_at == (0, time(10, 0))


async def test_company_set_and_show_through_the_cli(clean_db: str, tmp_path: Path) -> None:
    await db.init_orm(clean_db)
    try:
        await Company.create(yclients_id=555, title="Ромашка", hook_token="h" * 20)
    finally:
        await db.close_orm()
    env = env_for(clean_db, tmp_path)

    def cli(*args: str) -> tuple[int, str, str]:
        return run_cli(list(args), env, tmp_path)

    code, out, err = await asyncio.to_thread(
        cli, "company", "set", "--company", "555", "reminder_hours_before=3", "quiet_hours=off"
    )
    assert code == 0, err
    assert "reminder_hours_before: 2 -> 3" in out and "quiet_hours: 21:00-09:00 -> off" in out
    code, out, err = await asyncio.to_thread(
        cli, "company", "set", "--company", "555", "quiet_hours=late"
    )
    assert code == 1 and "quiet_hours" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = await asyncio.to_thread(cli, "company", "show", "--company", "555")
    assert code == 0, err
    assert "reminder_hours_before = 3" in out and "quiet_hours = off" in out
    assert "review_url = off" in out
