"""The WhatsApp channel: a person's message to a salon's number in, the dialog's answer out.

It only translates, in the Telegram adapter's shape: parse → Session → dialog → render → send.

- **Parse.** `Incoming.parse` keeps what is answered (no own messages, groups, broadcasts,
  channels). The salon is the one whose gateway session received the message. The sender's
  number is what WhatsApp vouches for: a `…@c.us` id carries it, a hidden `…@lid` one is asked
  of the gateway (`_phone`, again every LID_RECHECK while it stays hidden).
- **Session** from the chat's stored state (`WhatsAppChat`), keyed by the message for the
  idempotency of what the turn writes.
- **Dialog.** `prepare` (salon, client, language), `salon_closed`, then `arrive`: the dialog ties
  the chat to the salon's client through core.clients.link_chat (by the verified phone, or a
  phoneless card while it is hidden), tells a welcome bonus and greets a new chat. Then the
  text: a redeem's «да»/«нет» and a numbered choice of the last answer press those buttons
  (bot.dialog.actions); everything else is read by bot.whatsapp.menu.answer as in the console.
- **Render** as numbered text (bot.whatsapp.render) and **send** through the Outbox with its
  manners (seen, typing, pause, rate limit); the turn's state goes back to `WhatsAppChat`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from tortoise.exceptions import IntegrityError

from bot.dialog import WHATSAPP, Dialog, Reply, Session, actions
from bot.dialog.questions import Media
from bot.whatsapp import menu
from bot.whatsapp.outbox import Outbox, Outgoing
from bot.whatsapp.render import render
from core.models import Company, IntegrationStatus, WhatsAppChat
from core.phones import mask_chat_id, normalize_phone
from core.whatsapp import GatewayError, WhatsAppGateway, phone_from_chat_id

log = logging.getLogger(__name__)

# How often the gateway is asked again for the phone behind a hidden `@lid` sender.
LID_RECHECK = timedelta(minutes=10)
_PERSONS = ("@c.us", "@s.whatsapp.net", "@lid")


@dataclass(frozen=True, slots=True)
class Incoming:
    """A `message` event as far as the channel cares."""

    session: str
    message_id: str
    chat_id: str
    text: str
    has_media: bool
    name: str = ""
    # The message this one quotes (a reply to it), by WhatsApp's id.
    quoted_id: str | None = None
    # What the media is, from its MIME type (bot.dialog.questions.Media kinds).
    media_kind: str | None = None

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> Incoming | None:
        """None for what is not answered: our own messages, groups, broadcasts, channels,
        and events without a sender or a message id."""
        payload = event.get("payload")
        session = event.get("session")
        if not isinstance(payload, dict) or not isinstance(session, str):
            return None
        sender = payload.get("from")
        message_id = payload.get("id")
        if payload.get("fromMe") is True or not isinstance(sender, str):
            return None
        if not isinstance(message_id, str) or not message_id:
            return None
        if not sender.endswith(_PERSONS) or sender.startswith("status@"):
            return None
        body = payload.get("body")
        data = payload.get("_data")
        name = data.get("pushName") or data.get("notifyName") if isinstance(data, dict) else None
        quoted = payload.get("replyTo")
        quoted_id = quoted.get("id") if isinstance(quoted, dict) else None
        has_media = payload.get("hasMedia") is True
        return cls(
            session=session,
            message_id=message_id,
            chat_id=sender,
            text=body.strip() if isinstance(body, str) else "",
            has_media=has_media,
            name=str(name)[:255] if isinstance(name, str) else "",
            quoted_id=quoted_id if isinstance(quoted_id, str) and quoted_id else None,
            media_kind=_media_kind(payload.get("media")) if has_media else None,
        )


def _media_kind(media: object) -> str:
    mimetype = media.get("mimetype") if isinstance(media, dict) else None
    kind = mimetype.split("/", 1)[0] if isinstance(mimetype, str) else ""
    return {"image": "photo", "audio": "voice", "video": "video"}.get(
        kind, "document" if mimetype else "file"
    )


@lru_cache(maxsize=4096)
def _phone_of(chat_id: str) -> str | None:
    """The E.164 phone of a `…@c.us` sender (checked with phonenumbers; cached, as the same
    senders write again and again)."""
    return normalize_phone(phone_from_chat_id(chat_id))


class WhatsAppBot:
    def __init__(self, gateway: WhatsAppGateway, outbox: Outbox, dialog: Dialog) -> None:
        self.gateway = gateway
        self.outbox = outbox
        self.dialog = dialog

    async def handle(self, event: Mapping[str, Any], company_id: int | None = None) -> None:
        """One stored `message` event (the inbox's handler calls this)."""
        message = Incoming.parse(event)
        if message is None:
            return
        company = await self._company(message.session, company_id)
        if company is None:
            log.info("WhatsApp message for unknown session %r ignored", message.session)
            return
        if company.integration_status is IntegrationStatus.PENDING_WHATSAPP:
            # The salon has not switched the bot on yet: its number is still only its own.
            log.info("WhatsApp message to salon %s before activation ignored", company.yclients_id)
            return
        if not message.text and not message.has_media:
            # A reaction, a deleted message, a call notice: nothing to answer.
            return
        # One message at a time per chat is the inbox's promise; the chat's state is ours.
        chat = await WhatsAppChat.get_or_none(company_id=company.id, chat_id=message.chat_id)
        new = chat is None
        if chat is None:
            chat = WhatsAppChat(company_id=company.id, chat_id=message.chat_id)
        s = Session(
            WHATSAPP,
            identity={"whatsapp_chat_id": message.chat_id},
            staff_identity={},
            name=message.name,
            language_hint=company.default_locale,
            state=chat.state,
            data={**(chat.data or {}), "company_id": company.id},
            # The inbox may hand the same message over again (a retry after a failure or a
            # crash): what the turn writes is keyed by it.
            message_ref=f"wa:{message.session}:{message.message_id}",
        )
        s.company = company
        await self.dialog.prepare(s)
        closed = self.dialog.salon_closed(s)
        if closed is not None:
            # Said as it is: no menu to point to while the salon is closed.
            self._send(company, message, [Outgoing(reply.text) for reply in closed])
            return
        before = (chat.phone, chat.lid_checked_at, chat.state, chat.data, chat.offered)
        phone = await self._phone(chat, message)
        # Staff are known by a phone WhatsApp vouches for, never by a typed one.
        s.staff_identity = {"phone": phone} if phone else {}
        replies = await self.dialog.arrive(s, phone=phone, first=new)
        if message.has_media:
            # A photo, a voice note, a document: for the salon's admins, when from a client.
            media = Media(message.media_kind or "file", message.text)
            passed = await self.dialog.question(s, media=media)
            replies += passed or [
                Reply(s._("I can read only text messages. Please write in words."))
            ]
        elif message.text:
            answer = await self._answer_quoted(s, message)
            if answer is None:
                answer = await self._route(s, message.text, chat.offered or {}, first=new)
            if answer is None:
                # A first message was greeted above; only a question needs more.
                answer = (
                    await self.dialog.question(s, message.text)
                    if new
                    else await self.dialog.unknown(s, message.text)
                )
            replies += answer or []
        out = render(replies, s.locale)
        chat.state, chat.data = s.state, s.data
        chat.offered = {"options": out.options} if out.options else {}
        if out.confirm:
            chat.offered["confirm"] = {"token": out.confirm}
        await self._save(chat, new, before)
        self._send(company, message, out.messages)

    async def _answer_quoted(self, s: Session, message: Incoming) -> list[Reply] | None:
        """A staff member's quoted reply to a client's question the bot passed on."""
        if message.quoted_id is None:
            return None
        return await self.dialog.relayed_answer(
            s, WHATSAPP.name, None, message.quoted_id, message.text
        )

    def _send(self, company: Company, message: Incoming, messages: list[Outgoing]) -> None:
        self.outbox.answer(
            company.id, message.session, message.chat_id, message.message_id, messages
        )

    async def _company(self, session: str, company_id: int | None) -> Company | None:
        """The salon whose session received the message (the webhook noted its id)."""
        company = await self.dialog.companies.get(company_id) if company_id else None
        if company is not None and company.whatsapp_session == session:
            return company
        return await Company.get_or_none(whatsapp_session=session)

    async def _phone(self, chat: WhatsAppChat, message: Incoming) -> str | None:
        """The sender's phone as WhatsApp vouches for it, or None when it stays hidden."""
        if not message.chat_id.endswith("@lid"):
            chat.phone = _phone_of(message.chat_id)
            return chat.phone
        if chat.phone is not None:
            return chat.phone
        now = datetime.now(UTC)
        if chat.lid_checked_at is not None and now - chat.lid_checked_at < LID_RECHECK:
            return None
        chat.lid_checked_at = now
        try:
            found = await self.gateway.lid_to_phone(message.session, message.chat_id)
        except GatewayError as exc:
            log.info(
                "WhatsApp: the phone behind %s is unknown for now: %s",
                mask_chat_id(message.chat_id),
                exc,
            )
            return None
        chat.phone = normalize_phone(found)
        return chat.phone

    async def _route(
        self, s: Session, text: str, offered: Mapping[str, Any], *, first: bool = False
    ) -> list[Reply] | None:
        """The answer to `text`; None when nothing understood it."""
        confirm = offered.get("confirm")
        if isinstance(confirm, dict):
            pressed = menu.confirmation(text, str(confirm.get("token") or ""))
            if pressed is not None:
                return await self.dialog.action(s, pressed)
        options = offered.get("options") or []
        if text.isdigit() and 1 <= int(text) <= len(options):
            return await self.dialog.action(s, actions.parse(str(options[int(text) - 1])))
        # What is left is what every typed channel understands (the console too).
        return await menu.answer(self.dialog, s, text, first=first)

    async def _save(self, chat: WhatsAppChat, new: bool, before: tuple[Any, ...]) -> None:
        if new:
            try:
                await chat.save()
            except IntegrityError:
                # A second message of a brand-new chat, handled by another replica meanwhile.
                log.info("WhatsApp chat %s was created concurrently", mask_chat_id(chat.chat_id))
            return
        after = (chat.phone, chat.lid_checked_at, chat.state, chat.data, chat.offered)
        if after != before:
            await WhatsAppChat.filter(id=chat.id).update(
                phone=chat.phone,
                lid_checked_at=chat.lid_checked_at,
                state=chat.state,
                data=chat.data,
                offered=chat.offered,
            )
