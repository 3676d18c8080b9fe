"""The `salonbot` command line: a thin layer over core/ and the app factory."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable

from aiohttp import web

from core import db
from core.checks import run_checks
from core.logging import setup_logging
from core.settings import Settings, SettingsError, load_settings

log = logging.getLogger("salonbot")


def _secrets(settings: Settings) -> list[str]:
    values = [
        settings.secret_key,
        settings.telegram_bot_token,
        settings.telegram_webhook_secret,
        settings.yclients_partner_token,
        settings.yclients_user_token,
        settings.whatsapp_gateway_api_key,
        settings.whatsapp_webhook_hmac_key,
    ]
    return [v.get_secret_value() for v in values if v is not None]


async def _migrate(settings: Settings) -> list[str]:
    await db.init_orm(settings.db_url)
    try:
        return await db.migrate()
    finally:
        await db.close_orm()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from web.app import create_app

    applied = asyncio.run(_migrate(settings))
    if applied:
        log.info("applied %d migration(s) before serving", len(applied))
    app = create_app(settings)
    log.info(
        "serving on http://%s:%s (public %s)",
        settings.http_host,
        settings.http_port,
        settings.base_url,
    )
    # run_app turns SIGINT and SIGTERM into a graceful shutdown: the listener closes,
    # in-flight requests get shutdown_timeout to finish, cleanup_ctx teardown runs.
    web.run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=10,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    log.info("stopped")
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    applied = asyncio.run(_migrate(settings))
    print("\n".join(f"applied {name}" for name in applied) or "database is up to date")
    return 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    results = asyncio.run(run_checks(settings))
    width = max(len(r.name) for r in results)
    for r in results:
        line = f"{r.name:<{width}}  {r.status.upper():<4}  {r.detail}"
        if r.fix:
            line += f"\n{'':<{width}}        fix: {r.fix}"
        print(line)
    return 1 if any(r.status == "fail" for r in results) else 0


COMMANDS: dict[str, tuple[str, Callable[[Settings, argparse.Namespace], int]]] = {
    "serve": ("run web, bot and cron in one process (applies migrations first)", cmd_serve),
    "migrate": ("apply pending database migrations", cmd_migrate),
    "check": ("check settings and connectivity, with the fix for each failure", cmd_check),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salonbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _handler) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()  # until settings are read, so their own warnings are formatted too
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"salonbot: settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format, _secrets(settings))
    _help, handler = COMMANDS[args.command]
    return handler(settings, args)


if __name__ == "__main__":
    sys.exit(main())
