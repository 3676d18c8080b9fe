"""`salonbot staff …` and `salonbot chat` through the real entry point."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from core import db, ledger
from core.clients import create_client
from core.models import Client, Company, IntegrationStatus, Staff, StaffInvite, StaffRole
from tests.fakes.telegram import TOKEN, FakeBotAPI
from tests.web.test_sync_api_and_cli import run_cli


def env_for(clean_db: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": clean_db,
        "SECRET_KEY": "k" * 40,
        "DATA_DIR": str(tmp_path / "data"),
        "TELEGRAM_BOT_TOKEN": "",
        "TELEGRAM_BOT_USERNAME": "",
        **extra,
    }


async def seed(clean_db: str) -> Company:
    await db.init_orm(clean_db)
    try:
        company = await Company.create(
            yclients_id=555,
            title="Салон Ромашка",
            hook_token="h" * 20,
            integration_status=IntegrationStatus.ACTIVE,
            # No bill to ask for in the console's redeem (the cap: tests/bot/test_redeem_cap.py).
            max_redeem_percent=100,
        )
        client = (await create_client(company, phone="+79991234567", name="Анна")).client
        await ledger.accrue(client.id, 300, "visit:1")
    finally:
        await db.close_orm()
    return company


async def test_staff_invite_prints_a_single_use_link_with_the_bots_username(
    clean_db: str, tmp_path: Path
) -> None:
    await seed(clean_db)
    async with FakeBotAPI() as telegram:
        env = env_for(clean_db, tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url)
        args = ["staff", "invite", "--company", "555", "--role", "admin"]
        code, out, err = await asyncio.to_thread(run_cli, args, env, tmp_path)
    assert code == 0, err
    link = out.splitlines()[0]
    assert link.startswith("https://t.me/salonbot_test_bot?start=staff-")
    assert len(link.split("start=", 1)[1]) <= 64  # Telegram's limit for the payload
    await db.init_orm(clean_db)
    try:
        invite = await StaffInvite.get()
        assert invite.role is StaffRole.ADMIN and invite.used_at is None
    finally:
        await db.close_orm()


async def test_staff_invite_without_a_bot_says_what_to_set(clean_db: str, tmp_path: Path) -> None:
    await seed(clean_db)
    args = ["staff", "invite", "--company", "555"]
    code, _out, err = await asyncio.to_thread(run_cli, args, env_for(clean_db, tmp_path), tmp_path)
    assert code == 1 and "TELEGRAM_BOT_TOKEN" in err


async def test_staff_add_list_remove(clean_db: str, tmp_path: Path) -> None:
    await seed(clean_db)
    env = env_for(clean_db, tmp_path)

    def cli(*args: str) -> tuple[int, str, str]:
        return run_cli(list(args), env, tmp_path)

    code, out, err = await asyncio.to_thread(
        cli, "staff", "add", "--company", "555", "--telegram-id", "42", "--phone", "8 999 000-11-22"
    )
    assert code == 0, err
    assert "added" in out and "+79990001122" in out
    code, out, err = await asyncio.to_thread(
        cli, "staff", "add", "--company", "555", "--telegram-id", "42", "--role", "admin"
    )
    assert code == 0 and "updated" in out and "admin" in out
    code, out, err = await asyncio.to_thread(cli, "staff", "list")
    assert code == 0 and "555" in out and "telegram 42" in out and "active" in out
    code, out, err = await asyncio.to_thread(
        cli, "staff", "remove", "--company", "555", "--telegram-id", "42"
    )
    assert code == 0 and "removed" in out
    code, out, err = await asyncio.to_thread(
        cli, "staff", "remove", "--company", "555", "--telegram-id", "7"
    )
    assert code == 1 and "no such staff member" in err
    code, out, err = await asyncio.to_thread(
        cli, "staff", "add", "--company", "999", "--telegram-id", "1"
    )
    assert code == 1 and "no salon with YClients id 999" in err
    await db.init_orm(clean_db)
    try:
        staff = await Staff.get(telegram_user_id=42)
        assert not staff.active and staff.role is StaffRole.ADMIN
    finally:
        await db.close_orm()


def run_chat(args: list[str], env: dict[str, str], cwd: Path, lines: str) -> tuple[int, str, str]:
    saved = sys.stdin
    sys.stdin = io.StringIO(lines)
    try:
        return run_cli(args, env, cwd)
    finally:
        sys.stdin = saved


async def test_console_chat_as_client_and_as_staff_uses_the_same_dialog(
    clean_db: str, tmp_path: Path
) -> None:
    await seed(clean_db)
    env = env_for(clean_db, tmp_path)
    code, out, err = await asyncio.to_thread(
        run_chat,
        ["chat", "--company", "555", "--phone", "+79991234567"],
        env,
        tmp_path,
        "🎁 Бонусы\n🔑 Мой код\n/redeem\n",
    )
    assert code == 0, err
    assert "Добро пожаловать! Это Салон Ромашка" in out and "Ваш баланс: 300 бонусов." in out
    assert "[image:" in out and any((tmp_path / "data" / "chat").glob("code-*.png"))
    assert "Не понял" in out  # a client cannot reach staff commands

    # As staff: not before being added with that phone.
    args = ["chat", "--company", "555", "--phone", "+79990001122", "--staff"]
    code, _out, err = await asyncio.to_thread(run_chat, args, env, tmp_path, "")
    assert code == 1 and "staff add" in err
    await asyncio.to_thread(
        run_cli,
        ["staff", "add", "--company", "555", "--phone", "+79990001122"],
        env,
        tmp_path,
    )
    await db.init_orm(clean_db)
    try:
        client_code = (await Client.get(phone="+79991234567")).code
    finally:
        await db.close_orm()
    code, out, err = await asyncio.to_thread(
        run_chat, args, env, tmp_path, f"/redeem {client_code} 100\n1\n"
    )
    assert code == 0, err
    assert "[1] ✅ Подтвердить" in out and "Новый баланс: 200" in out
    assert "[notice to client" in out and "Списано бонусов: 100" in out


async def test_console_chat_understands_whatsapps_numbers_and_words(
    clean_db: str, tmp_path: Path
) -> None:
    await seed(clean_db)
    env = env_for(clean_db, tmp_path)
    code, out, err = await asyncio.to_thread(
        run_chat,
        ["chat", "--company", "555", "--phone", "+79991234567"],
        env,
        tmp_path,
        "2\nкод\nбаланс!\n",
    )
    assert code == 0, err
    assert "1 — 📅 Записаться" in out  # the menu, numbered as in WhatsApp
    _greeting, *turns = out.split("you: ")
    assert "Ваш баланс: 300 бонусов." in turns[0] and "Последние изменения" in turns[0]
    assert "[image:" in turns[1]
    assert "Ваш баланс: 300 бонусов." in turns[2]
    assert "Не понял" not in out

    await asyncio.to_thread(
        run_cli, ["staff", "add", "--company", "555", "--phone", "+79990001122"], env, tmp_path
    )
    await db.init_orm(clean_db)
    try:
        client_code = (await Client.get(phone="+79991234567")).code
    finally:
        await db.close_orm()
    code, out, err = await asyncio.to_thread(
        run_chat,
        ["chat", "--company", "555", "--phone", "+79990001122", "--staff"],
        env,
        tmp_path,
        f"списать {client_code} 100\nда\n",
    )
    assert code == 0, err
    assert "Новый баланс: 200" in out
