"""WhatsApp as a `ClientChannel` (bot.outbound): messages nobody just asked for, over the
salon's own number, rendered as the answers are (bot.whatsapp.render) and sent through the
Outbox with its manners — awaited, so the sender learns how it went.

- A salon that is not active, or has no WhatsApp session: NO_CHAT (its number says nothing new).
- The salon's session cannot send (logged out, stopped, not WORKING): NO_CHAT as well — it is
  the salon's number that is gone, not the client's chat, so the client is not marked (their
  WhatsApp works again the moment the salon links it again) and the message falls back.
- The gateway refuses the chat itself (a 400/404 about the chat id): GONE.
- The gateway is unreachable, answers 5xx/429, or the process is shutting down: RETRY.

WAHA answers 201 even for a number that is not on WhatsApp (the message is never delivered;
devlikeapro/waha#2083), so such a chat is not detected here; a client's own `…@c.us` chat
(they wrote from it) is the only kind this channel sends to.

Numbered choices in a proactive message (a reminder's "1 — confirm") are stored on the chat
like an answer's, so the client can reply by number.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tortoise.exceptions import IntegrityError

from bot.dialog import WHATSAPP, Reply
from bot.outbound import Delivery, Recipient, note_sent
from bot.whatsapp.outbox import Outbox, OutboxClosed
from bot.whatsapp.render import render
from core.models import Company, IntegrationStatus, WhatsAppChat
from core.phones import mask_chat_id
from core.whatsapp import GatewayError, GatewayRequestError, SessionNotConnected

log = logging.getLogger(__name__)


class WhatsAppChannel:
    name = WHATSAPP.name

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def send(self, to: Recipient, company: Company, replies: Sequence[Reply]) -> Delivery:
        chat_id = to.addresses.get(self.name)
        session = company.whatsapp_session
        if chat_id is None or session is None:
            return Delivery.NO_CHAT
        if company.integration_status is not IntegrationStatus.ACTIVE:
            return Delivery.NO_CHAT
        out = render(replies, to.locale)
        try:
            ids = await self.outbox.send(company.id, session, chat_id, out.messages)
        except SessionNotConnected as exc:
            log.info("whatsapp: salon %s cannot send now (%s): falling back", company.id, exc)
            return Delivery.NO_CHAT
        except GatewayRequestError as exc:
            if exc.status in (400, 404):
                log.info("whatsapp: no chat %s (%s): gone", mask_chat_id(chat_id), exc)
                return Delivery.GONE
            return Delivery.RETRY
        except (GatewayError, OutboxClosed) as exc:
            log.info("whatsapp: sending to %s failed for now: %s", mask_chat_id(chat_id), exc)
            return Delivery.RETRY
        for message_id in ids:
            note_sent(message_id)
        if out.options or out.confirm:
            await _offer(company.id, chat_id, out.options, out.confirm)
        return Delivery.SENT


async def _offer(company_id: int, chat_id: str, options: list[str], confirm: str | None) -> None:
    """What the numbers (and «да») of the message just sent mean, as the reply path keeps it."""
    offered: dict[str, object] = {"options": options} if options else {}
    if confirm:
        offered["confirm"] = {"token": confirm}
    updated = await WhatsAppChat.filter(company_id=company_id, chat_id=chat_id).update(
        offered=offered
    )
    if not updated:
        try:
            await WhatsAppChat.create(company_id=company_id, chat_id=chat_id, offered=offered)
        except IntegrityError:
            await WhatsAppChat.filter(company_id=company_id, chat_id=chat_id).update(
                offered=offered
            )
