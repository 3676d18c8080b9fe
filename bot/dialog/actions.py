"""What a button does, in one typed vocabulary for the dialog and every channel.

The idea of aiogram's `CallbackData` without Telegram: each action is a frozen dataclass whose
class both builds the button (`pack()`: `prefix[:field…]`) and matches it (`parse()`), so the
dialog, the Telegram routers, the WhatsApp renderer and the console agree by construction. A
packed action is at most 64 bytes (Telegram's limit on callback data), checked when packing.

The wire format is the one buttons had before this module existed (`rc:<token>`, `hist:<id>`,
`lang:en`, `book`, …): a keyboard sent before an upgrade keeps working, and the numbered choices
a WhatsApp chat has stored (`WhatsAppChat.offered`) still pick the same action. Data that does
not parse (an older vocabulary, a forged press) is None, which the dialog answers with "This
button is no longer active."
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar, get_args, get_type_hints

# Telegram's limit on an inline button's callback_data, in bytes.
MAX_BYTES = 64
SEP = ":"
# Tokens (Session.turn_token) and locale codes: URL-safe characters, never the separator.
_WORD = re.compile(r"[A-Za-z0-9_-]{1,32}")
# Database ids: a positive 64-bit integer has at most 19 digits.
_ID = re.compile(r"[0-9]{1,19}")
_ID_LIMIT = 2**63

_REGISTRY: dict[str, type[Action]] = {}
_INT_FIELDS: dict[type[Action], dict[str, bool]] = {}


@dataclass(frozen=True, slots=True)
class Action:
    """A button's action. Subclasses set `prefix` and declare `int` or `str` fields (a field
    defaulting to None may be left out, from the end)."""

    prefix: ClassVar[str] = ""

    def __init_subclass__(cls) -> None:
        # No super() call: a slots dataclass is a copy of the class, and the copy is not what
        # the zero-argument super() of this body knows. object's hook does nothing anyway.
        # The dataclass decorator makes a second class (slots) with the same prefix: the last
        # one made is the one parse() returns.
        known = _REGISTRY.get(cls.prefix)
        if not cls.prefix or SEP in cls.prefix:
            raise TypeError(f"{cls.__name__}: a prefix without {SEP!r} is required")
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"{cls.__name__}: prefix {cls.prefix!r} is {known.__name__}'s")
        _REGISTRY[cls.prefix] = cls

    def pack(self) -> str:
        parts = [self.prefix]
        for value in (getattr(self, f.name) for f in fields(self)):
            if value is None:
                break
            text = str(value)
            if not (_ID if isinstance(value, int) else _WORD).fullmatch(text):
                raise ValueError(f"{type(self).__name__}: {text!r} cannot be packed")
            parts.append(text)
        packed = SEP.join(parts)
        if len(packed.encode()) > MAX_BYTES:
            raise ValueError(f"{type(self).__name__} packs to more than {MAX_BYTES} bytes")
        return packed

    @classmethod
    def unpack(cls, parts: list[str]) -> Action | None:
        hints = _hints(cls)
        declared = fields(cls)
        required = sum(1 for f in declared if f.default is not None)
        if not required <= len(parts) <= len(declared):
            return None
        values: dict[str, Any] = {}
        for f, text in zip(declared, parts, strict=False):
            if hints[f.name]:
                if not _ID.fullmatch(text) or int(text) >= _ID_LIMIT:
                    return None
                values[f.name] = int(text)
            else:
                if not _WORD.fullmatch(text):
                    return None
                values[f.name] = text
        return cls(**values)


def _hints(cls: type[Action]) -> dict[str, bool]:
    """Which fields hold an id (int), the others holding a word (str)."""
    known = _INT_FIELDS.get(cls)
    if known is None:
        hints = get_type_hints(cls)
        known = {f.name: int in (hints[f.name], *get_args(hints[f.name])) for f in fields(cls)}
        _INT_FIELDS[cls] = known
    return known


def parse(data: str | None) -> Action | None:
    """The action a button's data stands for; None for anything else."""
    if not data or len(data.encode()) > MAX_BYTES:
        return None
    prefix, *parts = data.split(SEP)
    kind = _REGISTRY.get(prefix)
    return kind.unpack(parts) if kind is not None else None


# --- the client's buttons ---


@dataclass(frozen=True, slots=True)
class Book(Action):
    prefix: ClassVar[str] = "book"


@dataclass(frozen=True, slots=True)
class Balance(Action):
    prefix: ClassVar[str] = "bal"


@dataclass(frozen=True, slots=True)
class Visits(Action):
    prefix: ClassVar[str] = "visits"


@dataclass(frozen=True, slots=True)
class MyCode(Action):
    prefix: ClassVar[str] = "code"


@dataclass(frozen=True, slots=True)
class Help(Action):
    prefix: ClassVar[str] = "help"


@dataclass(frozen=True, slots=True)
class Language(Action):
    """Choose a language (`lang:en`); without one, show the choice."""

    prefix: ClassVar[str] = "lang"
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class History(Action):
    """Earlier bonus changes, before this ledger entry."""

    prefix: ClassVar[str] = "hist"
    before_id: int


@dataclass(frozen=True, slots=True)
class PickSalon(Action):
    """Bind the chat to one of the person's salons (by Company.id)."""

    prefix: ClassVar[str] = "salon"
    company_id: int


@dataclass(frozen=True, slots=True)
class VisitAnswer(Action):
    """A client's answer under a booking notice or a reminder: `answer` is `come`, `cancel`
    or `move`, and `sure`/`keep` to "cancel your visit?" (bot.dialog.visit); `message_id` the
    ScheduledMessage it answers."""

    prefix: ClassVar[str] = "va"
    message_id: int
    answer: str


# --- the visit loop: the after-visit rating, the client's say ---


@dataclass(frozen=True, slots=True)
class Rating(Action):
    """1–5 stars for the visit the after-visit question (ScheduledMessage id `row`) asked
    about."""

    prefix: ClassVar[str] = "rate"
    row: int
    stars: int


@dataclass(frozen=True, slots=True)
class Say(Action):
    """The client's say on unasked messages: REMINDERS_OFF, ALL_OFF, ON; without a choice,
    show where things stand."""

    prefix: ClassVar[str] = "say"
    choice: str | None = None

    REMINDERS_OFF: ClassVar[str] = "rem_off"
    ALL_OFF: ClassVar[str] = "all_off"
    ON: ClassVar[str] = "on"


# --- staff buttons ---


@dataclass(frozen=True, slots=True)
class ConfirmRedeem(Action):
    """Confirm the pending redeem with this token (the request itself stays server-side)."""

    prefix: ClassVar[str] = "rc"
    token: str


@dataclass(frozen=True, slots=True)
class CancelRedeem(Action):
    prefix: ClassVar[str] = "rx"
    token: str


@dataclass(frozen=True, slots=True)
class AdjustClient(Action):
    """Adjust the balance of a looked-up client (admins)."""

    prefix: ClassVar[str] = "aj"
    client_id: int


@dataclass(frozen=True, slots=True)
class Stop(Action):
    """Cancel the flow under way (a WhatsApp chat says `0`)."""

    prefix: ClassVar[str] = "stop"


# --- admins: the salon's settings, its team, its figures ---


@dataclass(frozen=True, slots=True)
class Settings(Action):
    """Show the salon's settings."""

    prefix: ClassVar[str] = "set"


@dataclass(frozen=True, slots=True)
class EditSetting(Action):
    """Ask for a new value of one setting (a core.salon_settings key)."""

    prefix: ClassVar[str] = "se"
    key: str


@dataclass(frozen=True, slots=True)
class ConfirmSetting(Action):
    """Store the pending change with this token (the change itself stays server-side)."""

    prefix: ClassVar[str] = "sc"
    token: str


@dataclass(frozen=True, slots=True)
class CancelSetting(Action):
    prefix: ClassVar[str] = "sx"
    token: str


@dataclass(frozen=True, slots=True)
class Team(Action):
    """Show the salon's staff and open invites."""

    prefix: ClassVar[str] = "team"


@dataclass(frozen=True, slots=True)
class NewInvite(Action):
    """Make a staff invite for this role (`staff` or `admin`)."""

    prefix: ClassVar[str] = "inv"
    role: str


@dataclass(frozen=True, slots=True)
class RevokeInvite(Action):
    prefix: ClassVar[str] = "invx"
    invite_id: int


@dataclass(frozen=True, slots=True)
class Member(Action):
    """One staff member's card, with what an admin may do to them."""

    prefix: ClassVar[str] = "mem"
    staff_id: int


@dataclass(frozen=True, slots=True)
class SetRole(Action):
    prefix: ClassVar[str] = "role"
    staff_id: int
    role: str


@dataclass(frozen=True, slots=True)
class RemoveMember(Action):
    """Ask to remove a member; with `sure` set, remove them."""

    prefix: ClassVar[str] = "rm"
    staff_id: int
    sure: int | None = None


@dataclass(frozen=True, slots=True)
class Stats(Action):
    prefix: ClassVar[str] = "stats"


def kinds() -> tuple[type[Action], ...]:
    """Every action class, for tests and routing."""
    return tuple(_REGISTRY.values())
