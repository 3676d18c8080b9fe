"""The web chat channel (the demo's page): the same dialog, in a browser.

It only translates, in the other adapters' shape: text in → Session → dialog → replies out as
plain data. A reply's buttons become labels the page shows as buttons, and pressing one is
sending its label as text: the label of a button of the last answer presses that button
(bot.dialog.actions), the label of the contact button shares the person's phone, a menu label
means its intent, and anything else is read as typed text is read in WhatsApp and the console
(bot.whatsapp.menu: «да» confirms a redeem on screen, «баланс», `списать CODE 500`, …). A link
button stays a link; an image is handed over as PNG bytes.

Who is talking is not the visitor's to say: the host names the people of the chat (`Person`:
a role, the phone it vouches for, whether it is the salon's staff), as the console trusts its
`--phone`. Conversations and their log live in memory, in `ChatLog`; notices for the chat's
clients go into the same log through `WebChannel`, a ClientChannel of bot.outbound (balance
notices, reminders, an admin's answer: whatever the one Outbound sends), so a page that polls
the log sees them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.dialog import WEB, Action, Dialog, Reply, Session, actions
from bot.outbound import Delivery, Recipient
from bot.whatsapp import menu
from core import clients
from core.models import Client, Company

log = logging.getLogger(__name__)

VISITOR = "visitor"
BOT = "bot"
# How many entries the log keeps (the oldest go first): a long demo stays small in memory.
LOG_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Person:
    role: str
    phone: str
    name: str = ""
    staff: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of the chat log: the visitor's, or the bot's (an answer or a notice)."""

    id: int
    role: str
    sender: str
    text: str
    buttons: tuple[str, ...] = ()
    # Buttons that open a page instead of answering: (label, url).
    links: tuple[tuple[str, str], ...] = ()
    # The main menu from now on (a persistent keyboard), when the message sets one.
    menu: tuple[tuple[str, ...], ...] | None = None
    image: bytes | None = None
    # Sent by the bot on its own (a balance notice), not as an answer.
    notice: bool = False


class ChatLog:
    """Every message of the chat, numbered; `wait_after` lets a poll wait for the next."""

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        self._entries: deque[Entry] = deque(maxlen=limit)
        self._last = 0
        self._changed = asyncio.Event()
        self.closed = False

    @property
    def last(self) -> int:
        return self._last

    def add(self, role: str, sender: str, reply: Reply | str, *, notice: bool = False) -> Entry:
        self._last += 1
        entry = _entry(self._last, role, sender, reply, notice)
        self._entries.append(entry)
        self._changed.set()
        self._changed = asyncio.Event()
        return entry

    def after(self, last_seen: int) -> list[Entry]:
        return [e for e in self._entries if e.id > last_seen]

    async def wait_after(self, last_seen: int) -> list[Entry]:
        """The entries after `last_seen`, waiting for one to come (or the log to close)."""
        while not self.after(last_seen) and not self.closed:
            await self._changed.wait()
        return self.after(last_seen)

    def close(self) -> None:
        """Wake every waiting poll (the process is stopping)."""
        self.closed = True
        self._changed.set()


def _entry(number: int, role: str, sender: str, reply: Reply | str, notice: bool) -> Entry:
    if isinstance(reply, str):
        return Entry(number, role, sender, reply, notice=notice)
    labels = [b.text for row in reply.buttons for b in row if b.url is None]
    if reply.ask_contact:
        labels.append(reply.ask_contact)
    links = tuple((b.text, b.url) for row in reply.buttons for b in row if b.url is not None)
    return Entry(
        number,
        role,
        sender,
        reply.text,
        buttons=tuple(labels),
        links=links,
        menu=reply.menu,
        image=reply.image.png if reply.image is not None else None,
        notice=notice,
    )


class WebChannel:
    """The web chat as a ClientChannel (bot.outbound): what the bot sends a person of the chat
    on its own — notices, reminders, an admin's answer — goes into the chat's log. A person's
    address in it is the phone the chat knows them by."""

    name = WEB.name

    def __init__(self, log_: ChatLog, people: Sequence[Person]) -> None:
        self.log = log_
        self.roles = {p.phone: p.role for p in people}

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        role = self.roles.get(to.addresses.get(self.name, ""))
        if role is None:
            return Delivery.NO_CHAT
        for reply in replies:
            self.log.add(role, BOT, reply, notice=True)
        return Delivery.SENT


_CONTACT = "contact"
# The chat's first button, as Telegram's "Start": the salon's welcome.
START = "/start"


class WebChat:
    """The conversations of the chat's people with one salon's bot, one turn at a time each."""

    def __init__(
        self, dialog: Dialog, company: Company, people: Sequence[Person], log_: ChatLog
    ) -> None:
        self.dialog = dialog
        self.log = log_
        self.people: Mapping[str, Person] = {p.role: p for p in people}
        self._sessions = {p.role: self._session(p, company) for p in people}
        # What the last answer offered to press: its buttons' labels.
        self._offered: dict[str, dict[str, Action | str | None]] = {p.role: {} for p in people}
        self._turns = {p.role: asyncio.Lock() for p in people}

    @staticmethod
    def _session(person: Person, company: Company) -> Session:
        identity = {"phone": person.phone}
        s = Session(
            WEB,
            identity=identity,
            # Only a staff person of the chat is ever the salon's staff, whatever the phone.
            staff_identity=dict(identity) if person.staff else {},
            name=person.name,
            language_hint=company.default_locale,
            data={"company_id": company.id},
        )
        s.company = company
        return s

    async def say(self, role: str, text: str) -> list[Entry]:
        """The visitor, as `role`, sends `text`; the bot's answers, also in the log."""
        person = self.people[role]
        async with self._turns[role]:
            s = self._sessions[role]
            self.log.add(role, VISITOR, text)
            text = text.strip()
            # Asked before the turn: preparing it makes the web chat the client's last channel,
            # after which anyone would be greeted as one who has written before.
            returning = text == START and await self._has_written(s, person)
            await self.dialog.prepare(s)
            replies = self.dialog.salon_closed(s)
            if replies is None and text == START:
                s.go(None)
                replies = await self.dialog.welcome(s, returning=returning)
            elif replies is None:
                replies = await self._answer(s, person, text)
            offered: dict[str, Action | str | None] = {}
            for reply in replies:
                for row in reply.buttons:
                    offered.update({b.text: b.action for b in row if b.url is None})
                if reply.ask_contact:
                    offered[reply.ask_contact] = _CONTACT
            # As in WhatsApp, only the last answer's buttons are live.
            self._offered[role] = offered
            return [self.log.add(role, BOT, reply) for reply in replies]

    @staticmethod
    async def _has_written(s: Session, person: Person) -> bool:
        if s.company is None:
            return False
        client = await Client.get_or_none(company_id=s.company.id, phone=person.phone)
        return client is not None and clients.has_written(client)

    async def _answer(self, s: Session, person: Person, text: str) -> list[Reply]:
        offered = self._offered[person.role]
        if text in offered:
            pressed = offered[text]
            if pressed == _CONTACT:
                return await self.dialog.contact(s, person.phone)
            return await self.dialog.action(s, pressed if isinstance(pressed, Action) else None)
        shown = next((a for a in offered.values() if isinstance(a, actions.ConfirmRedeem)), None)
        answer = menu.confirmation(text, shown.token) if shown is not None else None
        if answer is not None:
            return await self.dialog.action(s, answer)
        if text.startswith("/"):
            # A command (`/start`, the page's first button) means what it means in Telegram.
            return await self.dialog.text(s, text)
        replies = await menu.answer(self.dialog, s, text)
        return replies if replies is not None else await self.dialog.unknown(s)
