"""What each kind of scheduled message says: `kind -> async handler(due) -> Compose | None`.

A feature registers its kinds once, where the dispatcher is built (web/visit_loop.py): the
booking notices and the silent-client alert (bot/visits/texts.py), the reminders and the
after-visit question (the dialog), the weekly digest. A handler composes the message for a
claimed row (core.visits.Due, with its company, booking and client loaded) and returns None
when there is nothing to say any more (the row is dropped). Who receives it is the kind's
`audience`: the row's client, or the salon's admins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from bot.outbound import Compose
from core.visits import Due

Handler = Callable[[Due], Awaitable[Compose | None]]


class Audience(StrEnum):
    CLIENT = "client"
    ADMINS = "admins"


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    handler: Handler
    audience: Audience = Audience.CLIENT


class Kinds:
    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}

    def register(
        self, name: str, handler: Handler, *, audience: Audience = Audience.CLIENT
    ) -> None:
        """One handler per kind; a second registration of a kind is a wiring mistake."""
        if name in self._kinds:
            raise ValueError(f"the scheduled message kind {name!r} is registered already")
        self._kinds[name] = Kind(name, handler, audience)

    def get(self, name: str) -> Kind | None:
        return self._kinds.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)
