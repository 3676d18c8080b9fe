"""Dialog replies as MAX messages (NewMessageBody): text, and one inline keyboard per message.

MAX has no reply keyboard that stays under the input field, so everything a reply offers goes
into the message's inline keyboard, in Telegram's order: the choices (`callback` buttons
carrying the packed action, `link` buttons for URLs), then the contact button
(`request_contact`), then the menu as `message` buttons — pressing one sends its label as the
person's own message, which the dialog reads like a typed label (bot.dialog.menu.intent_for),
as Telegram's reply keyboard does. An image is uploaded and sent with the text under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.dialog import Reply
from bot.dialog.replies import Image

# MAX's limits (shared/reference/max-bot-api.md §4).
TEXT_LIMIT = 4000
BUTTON_TEXT_LIMIT = 128
ROWS_LIMIT = 30


@dataclass(frozen=True, slots=True)
class Outgoing:
    # The message body without the image (the channel uploads it and adds the attachment).
    body: dict[str, Any]
    image: Image | None = None
    # Replace the pressed message (an answer to the press) rather than send a new one.
    edit: bool = False


def _button(text: str, action: str | None, url: str | None) -> dict[str, Any]:
    text = text[:BUTTON_TEXT_LIMIT]
    if url:
        return {"type": "link", "text": text, "url": url}
    return {"type": "callback", "text": text, "payload": action or "noop"}


def keyboard(reply: Reply) -> dict[str, Any] | None:
    rows: list[list[dict[str, Any]]] = [
        [_button(b.text, b.action.pack() if b.action else None, b.url) for b in row]
        for row in reply.buttons
    ]
    if reply.ask_contact:
        rows.append([{"type": "request_contact", "text": reply.ask_contact[:BUTTON_TEXT_LIMIT]}])
    if reply.menu:
        rows += [[{"type": "message", "text": label} for label in row] for row in reply.menu]
    if not rows:
        return None
    return {"type": "inline_keyboard", "payload": {"buttons": rows[:ROWS_LIMIT]}}


def body(reply: Reply) -> dict[str, Any]:
    markup = keyboard(reply)
    return {"text": reply.text[:TEXT_LIMIT], "attachments": [markup] if markup else []}


def render(replies: Sequence[Reply]) -> list[Outgoing]:
    return [Outgoing(body(r), r.image, r.edit and r.image is None) for r in replies]
