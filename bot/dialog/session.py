"""One person in one chat, for one turn: who they are, their language, and the flow they are in.

The channel builds a Session from what it knows (Telegram user id, language code, the FSM state
and data) before a turn and stores `state`/`data` back after it when `changed`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from core.i18n import DEFAULT_LOCALE, gettext
from core.models import Client, Company


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    # Whether using it makes it the client's `last_channel`, where balance notices go. The
    # console is a local tool: trying it must not divert a real client's notices.
    remembered: bool = True


TELEGRAM = Channel("telegram")
WHATSAPP = Channel("whatsapp")
MAX = Channel("max")
CONSOLE = Channel("console", remembered=False)


@dataclass(eq=False)
class Session:
    channel: Channel
    # How the person is found among the salon's clients: {"telegram_user_id": 42} in Telegram,
    # {"phone": "+7…"} in the console.
    identity: dict[str, Any]
    # How they are found among its staff (Staff has no WhatsApp id: there it is the phone).
    staff_identity: dict[str, Any] | None = None
    name: str = ""
    # The language the channel reports (Telegram's language_code); the stored one wins.
    language_hint: str | None = None
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    locale: str = DEFAULT_LOCALE
    # Loaded by Dialog.prepare() for this turn.
    company: Company | None = None
    client: Client | None = None
    changed: bool = False
    # What the channel knows this turn by, the same when it delivers the message (or the button
    # press) again: Telegram redelivers an update whose answer was lost, the inbox retries a
    # WhatsApp event. The idempotency keys of what a turn writes derive from it, so a repeat
    # writes nothing twice, across replicas and restarts. None where nothing is ever delivered
    # twice (the console): each turn is then a new one.
    message_ref: str | None = None

    def __post_init__(self) -> None:
        if self.staff_identity is None:
            self.staff_identity = self.identity

    def _(self, message: str) -> str:
        """`message` in this person's language (extracted like any `_()` call)."""
        return gettext(self.locale, message)

    @property
    def company_id(self) -> int | None:
        value = self.data.get("company_id")
        return int(value) if value is not None else None

    def bind(self, company: Company) -> None:
        if self.company_id != company.id:
            # Another salon: what was bound to the previous one does not carry over.
            self.data = {"company_id": company.id}
            self.state = None
            self.client = None
            self.changed = True
        self.company = company

    def go(self, state: str | None, **data: Any) -> None:
        """Move to a flow step (None: no flow), keeping the binding and the chosen language."""
        kept = {k: v for k, v in self.data.items() if k in _KEPT}
        new = {**kept, **data}
        if new != self.data or state != self.state:
            self.data = new
            self.state = state
            self.changed = True

    def turn_token(self, purpose: str) -> str:
        """A short token (16 URL-safe characters: it fits in Telegram's callback data) for
        what this turn does for `purpose`: derived from `message_ref`, random without one."""
        if self.message_ref is None:
            return secrets.token_urlsafe(12)
        digest = hashlib.sha256(f"{purpose}\n{self.message_ref}".encode()).digest()
        return base64.urlsafe_b64encode(digest[:12]).decode()

    def remember(self, **data: Any) -> None:
        self.data.update(data)
        self.changed = True


# Data that outlives a flow step.
_KEPT = frozenset({"company_id", "locale", "after_phone", "redeem"})
