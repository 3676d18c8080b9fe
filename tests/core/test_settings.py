from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("TELEGRAM_", "YCLIENTS_", "WHATSAPP_", "LOG_", "HTTP_")) or name in {
            "DATABASE_URL",
            "SECRET_KEY",
            "DATA_DIR",
            "PUBLIC_BASE_URL",
        }:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_embedded_sqlite_service(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.db_url == "sqlite://data/salonbot.sqlite3"
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.telegram_mode == "polling" and settings.telegram_bot_token is None
    assert settings.yclients_sync_cron == "*/30 * * * *"
    assert settings.log_format == "console"


def test_secret_key_is_generated_once_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = load_settings().secret_key
    second = load_settings().secret_key
    assert first is not None and second is not None
    assert first.get_secret_value() == second.get_secret_value()
    assert len(first.get_secret_value()) >= 32
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
    warnings = [r for r in caplog.records if "SECRET_KEY" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"


def test_postgres_without_secret_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/salonbot")
    with pytest.raises(SettingsError, match=r"^SECRET_KEY: required when DATABASE_URL"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    assert load_settings().db_url == "postgres://u@db:5432/salonbot"


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HTTP_PORT=9090\nLOG_LEVEL=debug\nTELEGRAM_BOT_TOKEN=\n")
    settings = load_settings()
    assert settings.http_port == 9090 and settings.log_level == "DEBUG"
    assert settings.telegram_bot_token is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HTTP_PORT", "eighty", "HTTP_PORT: "),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: "),
        ("TELEGRAM_MODE", "push", "TELEGRAM_MODE: "),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: must start with sqlite:// or postgres://"),
        ("TELEGRAM_BOT_TOKEN", "123", "TELEGRAM_BOT_TOKEN: does not look like a bot token"),
        ("YCLIENTS_PARTNER_TOKEN", " abc123 ", "YCLIENTS_PARTNER_TOKEN: has spaces"),
        ("YCLIENTS_USER_TOKEN", "токен", "YCLIENTS_USER_TOKEN: has non-ASCII"),
        ("SECRET_KEY", "short", "SECRET_KEY: too short"),
        ("YCLIENTS_SYNC_CRON", "every half hour", "YCLIENTS_SYNC_CRON: is not a cron schedule"),
        (
            "PUBLIC_BASE_URL",
            "bot.example.com",
            "PUBLIC_BASE_URL: must start with https:// (or http://), e.g. https://bot.example.com",
        ),
        ("PUBLIC_BASE_URL", "ftp://bot.example.com", "PUBLIC_BASE_URL: must start with https://"),
        ("PUBLIC_BASE_URL", "https://", "PUBLIC_BASE_URL: must start with https://"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert message in str(error.value)
    if name.endswith("TOKEN"):
        assert value.strip() not in str(error.value)  # a secret is never echoed back
