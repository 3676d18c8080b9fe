"""Dialog replies as WhatsApp messages: plain text, links written out, choices numbered, the
menu as a numbered list, an image with its caption.

A reply's choices (the dialog's buttons) become `1 — …`, `2 — …`; the channel remembers their
actions and the next message picks one by its number. Three kinds are written differently:
a redeem's Confirm/Cancel pair asks for «да»/«yes» (the channel allows two minutes), a flow's
Cancel is `0` (which always ends a flow), and a link is written out for WhatsApp to open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.dialog import Intent, Reply, actions
from bot.dialog.menu import label
from bot.whatsapp.menu import MENU, MENU_LABEL, menu_lines
from bot.whatsapp.outbox import Outgoing
from core.i18n import gettext


@dataclass(slots=True)
class Rendered:
    messages: list[Outgoing] = field(default_factory=list)
    # The packed actions of the numbered choices, in order (empty: numbers mean the menu);
    # kept on the chat until the next message (bot.dialog.actions.parse reads them back).
    options: list[str] = field(default_factory=list)
    # The token of a redeem waiting for «да»/«yes».
    confirm: str | None = None


def render(replies: Sequence[Reply], locale: str) -> Rendered:
    out = Rendered()
    # Whether the person was shown the menu, a `0` line or a confirmation to answer: if not,
    # the last message ends with how to get the menu back (WhatsApp keeps no keyboard on
    # screen, and numbered choices shadow the menu's numbers for one message).
    way_on = False
    for reply in replies:
        lines = [reply.text] if reply.text else []
        choices: list[str] = []
        for row in reply.buttons:
            for button in row:
                action = button.action
                if button.url:
                    lines.append(f"{button.text}: {button.url}")
                elif isinstance(action, actions.ConfirmRedeem):
                    out.confirm = action.token
                    lines += ["", gettext(locale, "Reply “да” (yes) to confirm within 2 minutes.")]
                elif isinstance(action, actions.CancelRedeem):
                    lines.append(gettext(locale, "Reply “нет” (no) to cancel."))
                elif isinstance(action, actions.Stop):
                    lines.append(f"{MENU} — {label(Intent.CANCEL, locale)}")
                    way_on = True
                elif action is not None:
                    # Only the last reply's choices are live: what came before is superseded.
                    if not choices:
                        out.options = []
                    out.options.append(action.pack())
                    choices.append(f"{len(out.options)} — {button.text}")
        if out.confirm:
            way_on = True
        if choices:
            lines += ["", *choices]
        if reply.menu is not None:
            way_on = True
            shown = {text for row in reply.menu for text in row}
            staff = label(Intent.REDEEM, locale) in shown
            admin = label(Intent.SETTINGS, locale) in shown
            lines += ["", menu_lines(locale, staff=staff, admin=admin)]
        text = "\n".join(lines).strip()
        if reply.image is not None:
            out.messages.append(Outgoing(text, reply.image.png, reply.image.filename))
        elif text:
            out.messages.append(Outgoing(text))
    if out.messages and not way_on:
        last = out.messages[-1]
        hint = f"{MENU} — {gettext(locale, MENU_LABEL)}"
        # Right under numbered choices it reads as one more of them.
        gap = "\n" if last.text.rsplit("\n", 1)[-1][:1].isdigit() else "\n\n"
        out.messages[-1] = Outgoing(f"{last.text}{gap}{hint}", last.png, last.filename)
    return out
