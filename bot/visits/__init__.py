"""The visit loop's sending side: what each kind of scheduled message says (the registry and
the notices' texts), and the dispatcher that claims due rows and sends them at a messenger's
pace. The rows and their planning are core's (core/visits/)."""

from __future__ import annotations

from bot.visits.dispatcher import Dispatcher, DispatchPolicy
from bot.visits.pacing import Paced, TokenBucket
from bot.visits.registry import Audience, Handler, Kind, Kinds

__all__ = [
    "Audience",
    "DispatchPolicy",
    "Dispatcher",
    "Handler",
    "Kind",
    "Kinds",
    "Paced",
    "TokenBucket",
]
