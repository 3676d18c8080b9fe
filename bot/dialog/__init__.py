"""The channel-neutral conversation: `Dialog` takes intents and gives `Reply`s."""

from __future__ import annotations

from bot.dialog import actions
from bot.dialog.actions import Action
from bot.dialog.dialog import SALON_PREFIX, STAFF_PREFIX, Dialog
from bot.dialog.menu import Intent
from bot.dialog.replies import Button, Image, Reply
from bot.dialog.session import CONSOLE, MAX, TELEGRAM, WHATSAPP, Channel, Session

__all__ = [
    "CONSOLE",
    "MAX",
    "SALON_PREFIX",
    "STAFF_PREFIX",
    "TELEGRAM",
    "WHATSAPP",
    "Action",
    "Button",
    "Channel",
    "Dialog",
    "Image",
    "Intent",
    "Reply",
    "Session",
    "actions",
]
