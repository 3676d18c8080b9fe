"""The client's say on what the salon sends unasked.

Two switches per client card: `reminders_off` (no reminders and no after-visit question;
booking notices still come) and `messages_off` (nothing unasked at all). The visit loop reads
them when a planned message is due, so a change counts for what is planned already, and
turning them back on brings back what is still ahead.
"""

from __future__ import annotations

from core.models import Client


async def set_say(client: Client, *, reminders_off: bool, messages_off: bool) -> bool:
    """Store the client's say (stopping everything stops the reminders too); True when it
    changed."""
    reminders_off = reminders_off or messages_off
    if (client.reminders_off, client.messages_off) == (reminders_off, messages_off):
        return False
    client.reminders_off, client.messages_off = reminders_off, messages_off
    await Client.filter(id=client.id).update(reminders_off=reminders_off, messages_off=messages_off)
    return True
