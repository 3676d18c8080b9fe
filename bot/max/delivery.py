"""Messages nobody just asked for, in MAX: `MaxChannel`, the ClientChannel bot.outbound sends
through (balance notices included, bot.notifier).

Only clients who shared their phone in MAX have a MAX user id. 403 `chat.denied` (the person
blocked or stopped the bot) and 404 are for good (GONE: bot.outbound remembers it on the card
and tries the next channel); a 429 still there after the client's own waits, a network error
or a 5xx are temporary (RETRY: the caller tries MAX again later). A message of several replies
that fails halfway is RETRY as a whole, so a retry may repeat its first part.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.dialog import Reply
from bot.max.channel import CHANNEL, send_replies
from bot.outbound import Delivery, Recipient
from core.max import MaxBlocked, MaxClient, MaxError, MaxNotFound
from core.models import Company

log = logging.getLogger(__name__)


class MaxChannel:
    name = CHANNEL

    def __init__(self, client: MaxClient) -> None:
        self.client = client

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        address = to.addresses.get(self.name)
        if address is None or not address.isdigit():
            return Delivery.NO_CHAT
        try:
            await send_replies(self.client, int(address), replies)
        except (MaxBlocked, MaxNotFound) as exc:
            log.info("MAX: %s is unreachable: %s", _who(to), exc)
            return Delivery.GONE
        except MaxError as exc:
            log.warning("MAX: message to %s not delivered, for now: %s", _who(to), exc)
            return Delivery.RETRY
        return Delivery.SENT


def _who(to: Recipient) -> str:
    return f"client {to.client_id}" if to.client_id is not None else f"staff {to.staff_id}"
