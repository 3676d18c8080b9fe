"""What the dialog answers with, whatever the channel: text, buttons, a menu, an image.

A channel renders these its own way: Telegram as messages with inline and reply keyboards,
WhatsApp as text with a numbered menu, the console as printed lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.dialog.actions import Action


@dataclass(frozen=True, slots=True)
class Button:
    """A choice under a message: an `action` handed back to `Dialog.action()` when pressed,
    or a `url` that opens outside the chat."""

    text: str
    action: Action | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Image:
    png: bytes
    filename: str


Rows = tuple[tuple[Button, ...], ...]


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    buttons: Rows = ()
    # The main menu to show from now on (a persistent keyboard in Telegram).
    menu: tuple[tuple[str, ...], ...] | None = None
    # Ask for the person's own phone with a button of this label (Telegram's contact button).
    ask_contact: str | None = None
    image: Image | None = None
    # Replace the message whose button was pressed instead of sending a new one.
    edit: bool = False


def rows(*buttons: Button) -> Rows:
    """One button per row: how lists of choices read best on a phone."""
    return tuple((button,) for button in buttons)
