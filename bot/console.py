"""The console channel (`salonbot chat`): the same dialog, in a terminal, on the local database.

For owners trying the bot and for debugging. The phone given on the command line is trusted
(it is the operator's own database), so where Telegram would ask for the contact button the
console shares that phone itself. Buttons are numbered: typing the number presses one. An image
is written to a file whose path is printed. Balance notices are printed as they happen.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TextIO

from bot.dialog import CONSOLE, Dialog, Reply, Session
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
        self.dialog = Dialog(ConsoleNotifier(out, lambda: self.session.locale))
        self.actions: list[str] = []

    async def run(self, read_line: ReadLine) -> None:
        company = self.session.company
        assert company is not None
        await self._turn(partial(self.dialog.start, payload=f"salon-{company.yclients_id}"))
        while (line := await read_line()) is not None:
            line = line.strip()
            if line in QUIT:
                return
            if line:
                await self.say(line)

    async def say(self, line: str) -> None:
        """A typed line: the number of a button shown last presses it, anything else is text."""
        if line.isdigit() and 0 < int(line) <= len(self.actions):
            await self._turn(partial(self.dialog.action, action=self.actions[int(line) - 1]))
        else:
            await self._turn(partial(self.dialog.text, text=line))

    async def _turn(self, step: Callable[[Session], Awaitable[list[Reply]]]) -> None:
        await self.dialog.prepare(self.session)
        replies = await step(self.session)
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
                self.actions = [b.action or "" for b in numbered]
                for n, button in enumerate(numbered, 1):
                    target = f" → {button.url}" if button.url else ""
                    print(f"     [{n}] {button.text}{target}", file=self.out)
            if reply.menu:
                labels = " | ".join(label for row in reply.menu for label in row)
                print(f"     menu: {labels}", file=self.out)


async def chat(
    company: Company,
    phone: str,
    *,
    as_staff: bool,
    images: Path,
    out: TextIO | None = None,
    stdin: TextIO | None = None,
) -> None:
    # Looked up now, not at import: tests and `redirect_stdout` swap them.
    out = out or sys.stdout
    source = stdin or sys.stdin
    console = Console(company, phone, as_staff=as_staff, out=out, images=images)

    async def read_line() -> str | None:
        print("you: ", end="", file=out, flush=True)
        # A thread, so the event loop (and the database pool) keeps running while it waits.
        line = await asyncio.to_thread(source.readline)
        if not line:
            print(file=out)
            return None
        return line

    await console.run(read_line)
