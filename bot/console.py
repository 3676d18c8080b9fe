"""The console channel (`salonbot chat`): the same dialog, in a terminal, on the local database.

For owners trying the bot and for debugging. The phone given on the command line is trusted
(it is the operator's own database), so where Telegram would ask for the contact button the
console shares that phone itself. Typed lines mean what they mean in WhatsApp (numbers, «да»,
«баланс», «списать CODE 500`…, read by bot.whatsapp.menu), and a reply's buttons are numbered
the same way: typing the number presses one. An image is written to a file whose path is
printed. Balance notices are printed as they happen. Ctrl-D, Ctrl-C or `/quit` leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TextIO

from bot.dialog import CONSOLE, Action, Dialog, Reply, Session, actions
from bot.dialog.menu import Intent, label
from bot.outbound import Outbound
from bot.whatsapp import menu
from core.models import Company
from core.notifications import BalanceNotice, render

ReadLine = Callable[[], Awaitable[str | None]]
QUIT = frozenset({"/quit", "/exit", "quit", "exit"})


class ConsoleNotifier:
    def __init__(self, out: TextIO, locale: Callable[[], str]) -> None:
        self.out = out
        self.locale = locale

    async def notify(self, notices: Sequence[BalanceNotice]) -> None:
        for notice in notices:
            text = render(notice, self.locale()).replace("\n", " ")
            print(f"  [notice to client {notice.client_id}] {text}", file=self.out)


class Console:
    def __init__(
        self,
        company: Company,
        phone: str,
        *,
        as_staff: bool,
        out: TextIO,
        images: Path,
        outbound: Outbound | None = None,
    ) -> None:
        self.out = out
        self.images = images
        self.phone = phone
        self.session = Session(
            CONSOLE,
            identity={"phone": phone},
            # Without --staff the person is only ever a client, whatever their phone.
            staff_identity={"phone": phone} if as_staff else {},
            data={"company_id": company.id},
        )
        self.session.company = company
        self.dialog = Dialog(ConsoleNotifier(out, lambda: self.session.locale), outbound=outbound)
        self.actions: list[Action | None] = []

    async def run(self, read_line: ReadLine) -> None:
        company = self.session.company
        if company is None:
            raise RuntimeError("the console chat needs a salon")
        print(
            f"(talking to {company.title or company.yclients_id} as {self.phone}; type as in "
            "WhatsApp, a number picks from the list; Ctrl-D, Ctrl-C or /quit leaves)",
            file=self.out,
        )
        await self._turn(partial(self.dialog.start, payload=f"salon-{company.yclients_id}"))
        while (line := await read_line()) is not None:
            line = line.strip()
            if line in QUIT:
                return
            if line:
                await self.say(line)

    async def say(self, line: str) -> None:
        """A typed line: the number of a button shown last presses it, «да»/«нет» answers a
        confirmation, anything else is read as WhatsApp reads it."""
        if line.isdigit() and 0 < int(line) <= len(self.actions):
            await self._turn(partial(self.dialog.action, action=self.actions[int(line) - 1]))
        elif (answer := self._confirmation(line)) is not None:
            await self._turn(partial(self.dialog.action, action=answer))
        else:
            await self._turn(self._typed(line))

    def _confirmation(self, line: str) -> Action | None:
        """The Confirm (or Cancel) button of a redeem on screen, when the line says yes (no),
        as WhatsApp reads it."""
        shown = next((a for a in self.actions if isinstance(a, actions.ConfirmRedeem)), None)
        return menu.confirmation(line, shown.token) if shown is not None else None

    def _typed(self, line: str) -> Callable[[Session], Awaitable[list[Reply]]]:
        async def step(s: Session) -> list[Reply]:
            replies = await menu.answer(self.dialog, s, line)
            return replies if replies is not None else await self.dialog.unknown(s, line)

        return step

    async def _turn(self, step: Callable[[Session], Awaitable[list[Reply]]]) -> None:
        await self.dialog.prepare(self.session)
        replies = await step(self.session)
        # As in WhatsApp, only the last answer's buttons are live; without any, numbers mean
        # the menu.
        self.actions = []
        self._show(replies)
        if any(r.ask_contact for r in replies):
            print(f"     (sharing the console's phone {self.phone})", file=self.out)
            await self.dialog.prepare(self.session)
            self._show(await self.dialog.contact(self.session, self.phone))

    def _show(self, replies: Sequence[Reply]) -> None:
        for reply in replies:
            print(f"bot: {reply.text}".replace("\n", "\n     "), file=self.out)
            if reply.image is not None:
                self.images.mkdir(parents=True, exist_ok=True)
                path = self.images / reply.image.filename
                path.write_bytes(reply.image.png)
                print(f"     [image: {path}]", file=self.out)
            numbered = [b for row in reply.buttons for b in row]
            if numbered:
                # A link's number presses nothing (the dialog says the button is not active).
                self.actions = [b.action for b in numbered]
                for n, button in enumerate(numbered, 1):
                    target = f" → {button.url}" if button.url else ""
                    print(f"     [{n}] {button.text}{target}", file=self.out)
            if reply.menu:
                # WhatsApp's numbered menu: the numbers and words typed here mean the same.
                locale = self.session.locale
                staff = label(Intent.REDEEM, locale) in {text for row in reply.menu for text in row}
                lines = menu.menu_lines(locale, staff=staff).replace("\n", "\n     ")
                print(f"     {lines}", file=self.out)


async def chat(
    company: Company,
    phone: str,
    *,
    as_staff: bool,
    images: Path,
    out: TextIO | None = None,
    stdin: TextIO | None = None,
    outbound: Outbound | None = None,
) -> None:
    # Looked up now, not at import: tests and `redirect_stdout` swap them.
    out = out or sys.stdout
    source = stdin or sys.stdin
    console = Console(company, phone, as_staff=as_staff, out=out, images=images, outbound=outbound)

    async def read_line() -> str | None:
        print("you: ", end="", file=out, flush=True)
        line = await _readline(source)
        if not line:
            print(file=out)
            return None
        return line

    await console.run(read_line)


async def _readline(source: TextIO) -> str:
    """`source.readline()` in a daemon thread of its own, so the event loop (and the database
    pool) keeps running while it waits, and Ctrl-C leaves at once: asyncio.to_thread's executor
    thread would hold the exit until the next Enter."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def deliver(result: str | BaseException) -> None:
        if line.done():
            return
        if isinstance(result, BaseException):
            line.set_exception(result)
        else:
            line.set_result(result)

    def read() -> None:
        try:
            result: str | BaseException = source.readline()
        except Exception as exc:
            result = exc
        # The loop may be gone (the chat was left meanwhile): nobody waits for the line then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, result)

    threading.Thread(target=read, name="console-stdin", daemon=True).start()
    return await line
