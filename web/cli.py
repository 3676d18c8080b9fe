"""The `salonbot` command line: each command reads its arguments, works on the local database
through core/ and prints the outcome in plain sentences; `serve` runs the app factory
(web.app.create_app), and `sync` tells clients through the chat channels the web process
builds (web.channels)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from bot import console
from bot.telegram.username import BotUsername
from core import companies, db, marketplace, salon_settings
from core import staff as staff_service
from core.bookings import ApplyStats
from core.bookings.sync import sync_company
from core.checks import run_checks
from core.logging import setup_logging
from core.models import Company, IntegrationStatus, MarketplaceEvent, Staff, StaffRole, SyncState
from core.notifications import notify_committed
from core.phones import normalize_phone
from core.settings import Settings, SettingsError, load_settings
from core.yclients import Forbidden, Unauthorized, YClientsClient, YClientsError
from web.channels import standalone_channels

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
    await db.connect(settings.db_url)
    try:
        return await db.migrate()
    finally:
        await db.close_orm()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from web.app import create_app
    from web.loop import new_event_loop

    applied = asyncio.run(_migrate(settings))
    if applied:
        log.info("applied %d migration(s) before serving", len(applied))
    # Bound before anything starts, so a taken port is one sentence and no part has started.
    sockets = _listen(settings.http_host, settings.http_port)
    app = create_app(settings)
    log.info(
        "serving on http://%s:%s (public %s)",
        settings.http_host,
        sockets[0].getsockname()[1],
        settings.base_url,
    )
    # run_app turns SIGINT and SIGTERM into a graceful shutdown: the listener closes,
    # in-flight requests get shutdown_timeout to finish, cleanup_ctx teardown runs.
    web.run_app(
        app,
        sock=sockets,
        shutdown_timeout=10,
        print=None,
        access_log=None,
        handle_signals=True,
        loop=new_event_loop(),
    )
    log.info("stopped")
    return 0


def _listen(host: str, port: int) -> list[socket.socket]:
    """The listening sockets aiohttp would make for HTTP_HOST (every address a name has)."""
    sockets: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _name, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # As aiohttp and asyncio do: a restart rebinds at once, IPv6 leaves IPv4 alone.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
        return sockets
    except OSError as exc:
        for sock in sockets:
            sock.close()
        failure = _listen_failure(exc, host, port)
        if failure is None:
            raise
        raise failure from exc


def _listen_failure(exc: OSError, host: str, port: int) -> CommandError | None:
    if isinstance(exc, socket.gaierror):
        return CommandError(
            f"http: cannot listen on {host!r}: not a known address ({exc.strerror}); "
            "fix HTTP_HOST (0.0.0.0 listens on all interfaces)"
        )
    if exc.errno == errno.EADDRINUSE:
        return CommandError(
            f"http: port {port} on {host} is already in use (another salonbot?); "
            "stop what uses it or set HTTP_PORT to a free port"
        )
    if exc.errno == errno.EACCES:
        return CommandError(
            f"http: not allowed to listen on port {port} (ports below 1024 need root); "
            "set HTTP_PORT to 1024 or above and put a proxy in front"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return CommandError(
            f"http: {host} is not an address of this machine; "
            "fix HTTP_HOST (0.0.0.0 listens on all interfaces)"
        )
    return None


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


class CommandError(Exception):
    """Printed as `salonbot: <message>`, exit 1."""


def _yclients(settings: Settings) -> YClientsClient:
    client = YClientsClient.from_settings(settings)
    if client is None:
        raise CommandError(
            "YCLIENTS_PARTNER_TOKEN is not set: put the partner token from the YClients "
            "developer cabinet into .env"
        )
    return client


async def _with_db(settings: Settings, work: Callable[[], Awaitable[int]]) -> int:
    await db.connect(settings.db_url)
    try:
        if await db.pending_migrations():
            raise CommandError("the database has unapplied migrations: run `salonbot migrate`")
        return await work()
    finally:
        await db.close_orm()


def cmd_company_add(settings: Settings, args: argparse.Namespace) -> int:
    async def work() -> int:
        async with _yclients(settings) as client:
            api = client.with_user_token(args.user_token)
            info = await api.company(args.yclients_id)
            if args.user_token:
                # Tried before it is stored: a token that cannot read records would only fail
                # later, in the sync, where nobody is watching.
                try:
                    async for _page in api.iter_record_pages(args.yclients_id, count=1):
                        break
                except Unauthorized:
                    raise CommandError(
                        "the user token was not stored: YClients refused it (HTTP 401); copy "
                        "a current one (it changes when that user's password does)"
                    ) from None
                except Forbidden:
                    raise CommandError(
                        "the user token was not stored: it may not read salon "
                        f"{args.yclients_id}'s records (HTTP 403); give that user the right to "
                        "see records in YClients (Settings → Users → access rights), or use "
                        "another user's token"
                    ) from None
            company, created = await companies.upsert_from_yclients(
                info, status=IntegrationStatus.ACTIVE, user_token=args.user_token
            )
        print(
            f"{'added' if created else 'updated'}: {company.title} (YClients {company.yclients_id})"
        )
        print(f"timezone: {company.timezone}")
        print(f"booking link: {company.bookform_url or '— (no online booking form in YClients)'}")
        print(f"webhook URL for YClients: {companies.webhook_url(settings.base_url, company)}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_company_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work() -> int:
        rows = await Company.all().order_by("id").prefetch_related("sync_state")
        if not rows:
            print("no salons yet: `salonbot company add --yclients-id ID`")
            return 0
        for company in rows:
            state = await SyncState.get_or_none(company_id=company.id)
            last = (
                f"{state.last_run_at:%Y-%m-%d %H:%M} UTC {state.last_status}"
                if state and state.last_run_at
                else "never"
            )
            whatsapp = "connected" if company.whatsapp_connected else "disconnected"
            print(
                f"{company.yclients_id:>9}  {company.title or '—'}  [{company.integration_status}]"
                f"  whatsapp {whatsapp}  last sync: {last}"
            )
            print(f"{'':>9}  webhook: {companies.webhook_url(settings.base_url, company)}")
            telegram, wa = await _client_links(settings, company)
            if company.integration_status is IntegrationStatus.ACTIVE and (telegram or wa):
                shown = ", ".join(
                    f"{name} {url}"
                    for name, url in (("telegram", telegram), ("whatsapp", wa))
                    if url
                )
                print(f"{'':>9}  links: {shown}")
            elif company.integration_status is IntegrationStatus.PENDING_WHATSAPP:
                step = "activate" if company.whatsapp_connected else "link WhatsApp"
                print(f"{'':>9}  onboarding: waiting for the owner to {step}")
            if (
                company.integration_status is IntegrationStatus.ACTIVE
                and company.whatsapp_session
                and not company.whatsapp_connected
            ):
                # The watchdog restarts a failed session (capped); an unlinked one needs the owner.
                print(
                    f"{'':>9}  whatsapp down: clients get no answers there; the owner links it"
                    " again on the onboarding page (open the app in YClients)"
                )
        return 0

    return asyncio.run(_with_db(settings, work))


async def _client_links(settings: Settings, company: Company) -> tuple[str | None, str | None]:
    username = await BotUsername(settings).get()
    return (
        marketplace.telegram_link(username, company.yclients_id),
        marketplace.whatsapp_link(company.whatsapp_phone),
    )


def cmd_company_show(settings: Settings, args: argparse.Namespace) -> int:
    async def work() -> int:
        company = await _salon(args.yclients_id)
        telegram, wa = await _client_links(settings, company)
        user = ", ".join(
            str(v)
            for v in (
                company.marketplace_user_name,
                company.marketplace_user_email,
                company.marketplace_user_phone,
            )
            if v
        )
        linked = f"connected, {company.whatsapp_phone or 'number unknown'}"
        rows = [
            ("status", company.integration_status.value),
            ("marketplace user", user or "—"),
            (
                "whatsapp",
                (linked if company.whatsapp_connected else "disconnected")
                + (f" (session {company.whatsapp_session})" if company.whatsapp_session else ""),
            ),
            ("booking link", company.bookform_url or "—"),
            ("webhook URL", companies.webhook_url(settings.base_url, company)),
            ("api key", "issued (only its hash is stored)" if company.api_key_hash else "none"),
            (
                "telegram link",
                telegram or "— (set TELEGRAM_BOT_USERNAME, or TELEGRAM_BOT_TOKEN for getMe)",
            ),
            ("whatsapp link", wa or "— (WhatsApp not linked yet)"),
        ]
        print(f"{company.title or '—'} (YClients {company.yclients_id})")
        for name, value in rows:
            print(f"  {name + ':':<18}{value}")
        print("  settings (salonbot company set --company ID KEY=VALUE):")
        for key, value in salon_settings.show(company):
            print(f"    {key} = {value}")
        events = await MarketplaceEvent.filter(company_id=company.id).order_by("-id").limit(10)
        if events:
            print("  recent marketplace events:")
            for event in reversed(events):
                print(f"    {event.created_at:%Y-%m-%d %H:%M} UTC  {event.kind}  {event.details}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_company_set(settings: Settings, args: argparse.Namespace) -> int:
    values: dict[str, str] = {}
    for pair in args.values:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"{pair!r} is not KEY=VALUE; e.g. reminder_hours_before=3")
        values[key.strip()] = value
    try:
        for key, value in values.items():
            salon_settings.parse(key, value)
    except salon_settings.SettingError as exc:
        raise CommandError(str(exc)) from None

    async def work() -> int:
        company = await _salon(args.yclients_id)
        changes = await salon_settings.change(company, values, actor="cli")
        for change in changes:
            print(f"{change.key}: {change.old or '—'} -> {change.new or '—'}")
        if not changes:
            print("nothing changed")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    def progress(company: Company, stats: ApplyStats) -> None:
        print(
            f"\r{company.title or company.yclients_id}: {stats.fetched} records, "
            f"{stats.awarded} awarded, {stats.reversed} reversed",
            end="",
            file=sys.stderr,
            flush=True,
        )

    async def work() -> int:
        query = Company.filter(integration_status=IntegrationStatus.ACTIVE)
        if args.company is not None:
            query = Company.filter(yclients_id=args.company)
        targets = await query.order_by("id")
        if not targets:
            raise CommandError("no such active salon (see `salonbot company list`)")
        failed = 0
        results: list[tuple[Company, ApplyStats | str]] = []
        async with _yclients(settings) as client, standalone_channels(settings) as channels:
            for company in targets:
                try:
                    stats = await sync_company(client, company, full=args.full, progress=progress)
                    results.append((company, stats))
                except YClientsError as exc:
                    failed += 1
                    results.append((company, str(exc)))
                    continue
                finally:
                    print(file=sys.stderr)
                # The salon's sync has committed: its clients hear of their bonuses now.
                await notify_committed(channels.notifier, stats.changes)
        header = (
            "salon",
            "fetched",
            "created",
            "updated",
            "matched",
            "unmatched",
            "awarded",
            "reversed",
        )
        print("  ".join(f"{h:>9}" for h in header))
        for company, outcome in results:
            name = str(company.yclients_id)
            if isinstance(outcome, str):
                print(f"{name:>9}  failed: {outcome}")
                continue
            figures = outcome.summary()
            print("  ".join(f"{v:>9}" for v in [name, *(figures[h] for h in header[1:])]))
            if outcome.unmatched_records:
                shown = ", ".join(map(str, outcome.unmatched_records[:20]))
                print(f"{'':>9}  unmatched records (no phone, email or code): {shown}")
        return 1 if failed else 0

    return asyncio.run(_with_db(settings, work))


# --- staff and the console chat (the Telegram bot's side) ---


async def _salon(yclients_id: int) -> Company:
    company = await Company.get_or_none(yclients_id=yclients_id)
    if company is None:
        raise CommandError(f"no salon with YClients id {yclients_id} (see `salonbot company list`)")
    return company


def _phone(raw: str | None) -> str | None:
    if raw is None:
        return None
    phone = normalize_phone(raw)
    if phone is None:
        raise CommandError(f"{raw!r} is not a valid phone number (e.g. +79991234567)")
    return phone


def _role(args: argparse.Namespace) -> StaffRole:
    return StaffRole.ADMIN if args.role == "admin" else StaffRole.STAFF


def cmd_staff_invite(settings: Settings, args: argparse.Namespace) -> int:
    async def work() -> int:
        company = await _salon(args.company)
        username = await BotUsername(settings).get()
        if username is None:
            raise CommandError(
                "the bot's username is unknown: set TELEGRAM_BOT_TOKEN (Telegram is asked with "
                "getMe), or TELEGRAM_BOT_USERNAME"
            )
        role = _role(args)
        token, invite = await staff_service.create_invite(
            company, role, ttl=timedelta(hours=args.hours)
        )
        print(staff_service.invite_link(username, token))
        print(
            f"for {company.title or company.yclients_id} as {role}: opens once, "
            f"until {invite.expires_at:%Y-%m-%d %H:%M} UTC"
        )
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_staff_add(settings: Settings, args: argparse.Namespace) -> int:
    async def work() -> int:
        company = await _salon(args.company)
        try:
            staff, created = await staff_service.add_staff(
                company,
                telegram_user_id=args.telegram_id,
                phone=_phone(args.phone),
                name=args.name or "",
                role=_role(args),
            )
        except staff_service.StaffError as exc:
            raise CommandError(str(exc)) from None
        print(f"{'added' if created else 'updated'}: {_staff_line(staff)}")
        return 0

    return asyncio.run(_with_db(settings, work))


def _staff_line(staff: Staff) -> str:
    return (
        f"#{staff.id} {staff.role:<5} {'active' if staff.active else 'removed':<7} "
        f"telegram {staff.telegram_user_id or '—'}  phone {staff.phone or '—'}  {staff.name}"
    ).rstrip()


def cmd_staff_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work() -> int:
        query = Staff.all().prefetch_related("company").order_by("company_id", "id")
        if args.company is not None:
            query = query.filter(company_id=(await _salon(args.company)).id)
        rows = await query
        if not rows:
            print("no staff yet: `salonbot staff invite --company ID` or `salonbot staff add`")
        for staff in rows:
            print(f"{staff.company.yclients_id:>9}  {_staff_line(staff)}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_staff_remove(settings: Settings, args: argparse.Namespace) -> int:
    async def work() -> int:
        company = await _salon(args.company)
        if args.telegram_id is None and args.phone is None:
            raise CommandError("say who: --telegram-id N or --phone +7…")
        removed = await staff_service.remove_staff(
            company, telegram_user_id=args.telegram_id, phone=_phone(args.phone)
        )
        if removed is None:
            raise CommandError("no such staff member in this salon (see `salonbot staff list`)")
        print(f"removed: {_staff_line(removed)}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    async def work() -> int:
        company = await _salon(args.company)
        phone = _phone(args.phone)
        if phone is None:
            raise RuntimeError("_phone returned nothing")
        if args.staff and not await Staff.exists(company_id=company.id, phone=phone, active=True):
            raise CommandError(
                "no active staff member of this salon has that phone: "
                f"`salonbot staff add --company {args.company} --phone {phone}` first"
            )
        # The chat channels that are on carry what leaves the console (questions to the
        # admins, an admin's «ответ CODE text» to a client).
        async with standalone_channels(settings) as channels:
            await console.chat(
                company,
                phone,
                as_staff=args.staff,
                images=settings.data_dir / "chat",
                outbound=channels.outbound,
            )
        return 0

    try:
        return asyncio.run(_with_db(settings, work))
    except KeyboardInterrupt:
        # Ctrl-C is one of the ways out of the chat (the greeting says so), not an error.
        print()
        return 0


Handler = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(prog="salonbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    handlers: dict[str, Handler] = {}

    def command(name: str, help_text: str, handler: Handler, group: Any = sub) -> Any:
        handlers[name] = handler
        p = group.add_parser(name.split(" ")[-1], help=help_text, description=help_text)
        p.set_defaults(handler_name=name)
        return p

    command("serve", "run web, bot and cron in one process (applies migrations first)", cmd_serve)
    command("migrate", "apply pending database migrations", cmd_migrate)
    command("check", "check settings and connectivity, with the fix for each failure", cmd_check)

    company = sub.add_parser("company", help="salons set up by hand").add_subparsers(
        dest="company_command", required=True
    )
    add = command(
        "company add", "read a salon from YClients and store it", cmd_company_add, company
    )
    add.add_argument("--yclients-id", type=int, required=True, help="the salon's YClients id")
    add.add_argument("--user-token", help="the salon's YClients user token (reads records)")
    command(
        "company list", "each salon's status, last sync and webhook URL", cmd_company_list, company
    )
    show = command(
        "company show", "one salon's onboarding status, links and events", cmd_company_show, company
    )
    show.add_argument(
        "--company",
        "--yclients-id",
        dest="yclients_id",
        type=int,
        required=True,
        help="the salon's YClients id",
    )
    set_ = command(
        "company set",
        "change a salon's settings: KEY=VALUE … (see `company show` for the keys)",
        cmd_company_set,
        company,
    )
    set_.add_argument(
        "--company", dest="yclients_id", type=int, required=True, help="the salon's YClients id"
    )
    set_.add_argument("values", nargs="+", metavar="KEY=VALUE")

    sync = command("sync", "sync bookings from YClients now", cmd_sync)
    sync.add_argument("--company", type=int, help="one salon's YClients id (default: all active)")
    sync.add_argument("--full", action="store_true", help="re-read the whole visit-date window")

    staff = sub.add_parser("staff", help="salon staff (Telegram and WhatsApp)").add_subparsers(
        dest="staff_command", required=True
    )
    invite = command(
        "staff invite",
        "print a single-use, expiring link to join as staff",
        cmd_staff_invite,
        staff,
    )
    invite.add_argument("--company", type=int, required=True, help="the salon's YClients id")
    invite.add_argument("--role", choices=["staff", "admin"], default="staff")
    invite.add_argument("--hours", type=float, default=24, help="how long the link is valid")
    add_staff = command("staff add", "add (or update) a staff member", cmd_staff_add, staff)
    add_staff.add_argument("--company", type=int, required=True, help="the salon's YClients id")
    add_staff.add_argument("--telegram-id", type=int, help="their Telegram user id")
    add_staff.add_argument(
        "--phone", help="their phone (WhatsApp and `salonbot chat --staff` know them by it)"
    )
    add_staff.add_argument("--name", help="their name")
    add_staff.add_argument("--role", choices=["staff", "admin"], default="staff")
    list_staff = command("staff list", "staff members and their roles", cmd_staff_list, staff)
    list_staff.add_argument("--company", type=int, help="one salon's YClients id (default: all)")
    remove = command(
        "staff remove", "deactivate a staff member (their history stays)", cmd_staff_remove, staff
    )
    remove.add_argument("--company", type=int, required=True, help="the salon's YClients id")
    remove.add_argument("--telegram-id", type=int, help="their Telegram user id")
    remove.add_argument("--phone", help="their phone")

    chat = command("chat", "talk to the bot in this terminal, on the local database", cmd_chat)
    chat.add_argument("--company", type=int, required=True, help="the salon's YClients id")
    chat.add_argument("--phone", required=True, help="whose conversation: +7…")
    chat.add_argument("--staff", action="store_true", help="as the staff member with this phone")
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    setup_logging()  # until settings are read, so their own warnings are formatted too
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"salonbot: settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format, _secrets(settings))
    try:
        return handlers[args.handler_name](settings, args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as exc:
        sentence = explain(exc, settings)
        if sentence is None:
            raise
        # The sentence is for the user; the traceback only for whoever runs with LOG_LEVEL=DEBUG.
        log.debug("%s failed", args.handler_name, exc_info=True)
        print(f"salonbot: {sentence}", file=sys.stderr)
        return 1


def explain(exc: Exception, settings: Settings) -> str | None:
    """One sentence, with the fix, for a failure we can name; None for a bug (a traceback)."""
    if isinstance(exc, CommandError):
        return str(exc)
    if isinstance(exc, YClientsError):
        return f"YClients: {exc}"
    failure = db.describe(exc, settings.db_url)
    if failure is not None:
        return f"database: {failure}"
    return None


if __name__ == "__main__":
    sys.exit(main())
