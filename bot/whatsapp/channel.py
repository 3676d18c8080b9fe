"""The WhatsApp channel: a person's message to a salon's number in, the dialog's answer out.

It only translates. The salon is the one whose gateway session received the message. The
person is found by their chat id; when WhatsApp shows their number (a `…@c.us` sender, or a
hidden `…@lid` one the gateway maps to a phone) that number is verified — WhatsApp delivered
from it — so they join the salon's client with it, the one YClients already knows included,
without being asked for it. A `…@lid` sender whose number stays hidden gets a card of their
own without a phone: their booking link and code work, and a phone they type is never taken
to open anyone's balance. Staff are recognised by that verified phone only.

What arrives is matched in order: a pending redeem's «да»/«нет», a numbered choice the last
answer offered, `0` (the menu; it ends a flow), input for a flow under way, the menu numbers,
the staff commands (`списать CODE 500`), words such as «баланс» or «code», a greeting, then
what every channel understands (`/commands`, menu labels, a code). Anything else gets a
friendly answer with the menu; the first message of a new chat gets a greeting with the menu.

Answers go out through the Outbox with its manners (seen, typing, pause, rate limit); the
turn's state is kept per chat in `WhatsAppChat`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from tortoise.exceptions import IntegrityError

from bot.dialog import WHATSAPP, Dialog, Reply, Session
from bot.dialog.client import has_written
from bot.whatsapp import menu
from bot.whatsapp.outbox import Outbox, Outgoing
from bot.whatsapp.render import render
from core import clients, ledger
from core.i18n import pick_locale
from core.models import Client, Company, IntegrationStatus, LedgerEntry, WhatsAppChat
from core.notifications import BalanceNotice
from core.notifications import render as render_notice
from core.onboarding import unavailable_reply
from core.phones import mask_chat_id, mask_phone, normalize_phone
from core.whatsapp import GatewayError, WhatsAppGateway, phone_from_chat_id

log = logging.getLogger(__name__)

CONFIRM_WITHIN = timedelta(minutes=2)
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
        return cls(
            session=session,
            message_id=message_id,
            chat_id=sender,
            text=body.strip() if isinstance(body, str) else "",
            has_media=payload.get("hasMedia") is True,
            name=str(name)[:255] if isinstance(name, str) else "",
        )


@lru_cache(maxsize=4096)
def _phone_of(chat_id: str) -> str | None:
    """The E.164 phone of a `…@c.us` sender (checked with phonenumbers: 0.1 ms, every message)."""
    return normalize_phone(phone_from_chat_id(chat_id))


@dataclass(frozen=True, slots=True)
class Linked:
    # The client is new to the salon (greeted as such rather than welcomed back).
    created: bool = False
    # The client had written to the bot before this message (bot.dialog.client.has_written,
    # asked before this turn linked the chat): only they are welcomed back.
    returning: bool = False
    # What linking has to say (the welcome bonus).
    replies: tuple[Reply, ...] = ()


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
        if company.integration_status is not IntegrationStatus.ACTIVE:
            known = await WhatsAppChat.get_or_none(company_id=company.id, chat_id=message.chat_id)
            closed = unavailable_reply(company.integration_status, self._locale(known, company))
            if closed is not None:
                self.outbox.answer(
                    company.id,
                    message.session,
                    message.chat_id,
                    message.message_id,
                    [Outgoing(closed)],
                )
                return
        s = Session(
            WHATSAPP,
            identity={"whatsapp_chat_id": message.chat_id},
            staff_identity={},
            name=message.name,
            language_hint=company.default_locale,
            data={"company_id": company.id},
            # The inbox may hand the same message over again (a retry after a failure or a
            # crash): what the turn writes is keyed by it.
            message_ref=f"wa:{message.session}:{message.message_id}",
        )
        s.company = company
        # The inbox hands over one message at a time, so a round trip saved is throughput: the
        # chat's state and the client are read side by side.
        chat, _ = await asyncio.gather(
            WhatsAppChat.get_or_none(company_id=company.id, chat_id=message.chat_id),
            self.dialog.prepare(s),
        )
        new = chat is None
        if chat is None:
            chat = WhatsAppChat(company_id=company.id, chat_id=message.chat_id)
        s.state, s.data = chat.state, {**(chat.data or {}), "company_id": company.id}
        # Dialog.prepare's rule, now that the chat's own choice of language is known too.
        s.locale = pick_locale(
            s.client.locale if s.client else None, s.data.get("locale"), s.language_hint
        )
        before = (chat.phone, chat.lid_checked_at, chat.state, chat.data, chat.offered)
        phone = await self._phone(chat, message)
        # Staff are known by a phone WhatsApp vouches for, never by a typed one.
        s.staff_identity = {"phone": phone} if phone else {}
        linked = await self._link(s, company, phone)
        replies = list(linked.replies)
        if new:
            replies += await self._greeting(s, created=linked.created, returning=linked.returning)
        if not message.text:
            replies.append(Reply(s._("I can read only text messages. Please write in words.")))
        else:
            answer = await self._route(s, message.text, chat.offered or {}, first=new)
            if answer is None and not new:
                answer = await self.dialog.unknown(s)
            replies += answer or []
        out = render(replies, s.locale)
        chat.state, chat.data = s.state, s.data
        chat.offered = {"options": out.options} if out.options else {}
        if out.confirm:
            chat.offered["confirm"] = {"token": out.confirm, "at": time.time()}
        await self._save(chat, new, before)
        self.outbox.answer(
            company.id, message.session, message.chat_id, message.message_id, out.messages
        )

    async def _company(self, session: str, company_id: int | None) -> Company | None:
        """The salon whose session received the message (the webhook noted its id)."""
        company = await self.dialog.companies.get(company_id) if company_id else None
        if company is not None and company.whatsapp_session == session:
            return company
        return await Company.get_or_none(whatsapp_session=session)

    @staticmethod
    def _locale(chat: WhatsAppChat | None, company: Company) -> str:
        chosen = (chat.data or {}).get("locale") if chat is not None else None
        return pick_locale(chosen, company.default_locale)

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

    async def _link(self, s: Session, company: Company, phone: str | None) -> Linked:
        """Tie the chat to the salon's client before the turn."""
        chat_id = str(s.identity["whatsapp_chat_id"])
        mine = s.client
        if mine is not None and (mine.phone is not None or phone is None):
            return Linked(returning=has_written(mine))
        created = False
        returning = mine is not None and has_written(mine)
        welcome: ledger.LedgerResult | None = None
        try:
            if phone is not None:
                if not returning:
                    # Asked before joining: joining ties this chat to the card.
                    owner = await Client.get_or_none(company_id=company.id, phone=phone)
                    returning = owner is not None and has_written(owner)
                joined = await self._join(company, phone, chat_id, s, mine)
                if joined is None:
                    return Linked(returning=returning)
                client, created, welcome = joined.client, joined.created, joined.welcome
            else:
                # WhatsApp hides the number: a card of their own, without a phone and without
                # the welcome bonus (that comes once a number is known).
                new = await clients.create_client(
                    company, whatsapp_chat_id=chat_id, name=s.name, welcome=False
                )
                client, created = new.client, True
        except IntegrityError:
            # Another replica linked this chat meanwhile: take what it made.
            found = await Client.get_or_none(company_id=company.id, whatsapp_chat_id=chat_id)
            if found is None:
                raise
            client = found
        if client.last_channel != WHATSAPP.name:
            client.last_channel = WHATSAPP.name
            await Client.filter(id=client.id).update(last_channel=WHATSAPP.name)
        s.client = client
        s.locale = pick_locale(client.locale, s.data.get("locale"), s.language_hint)
        if welcome is None:
            return Linked(created, returning and not created)
        notice = render_notice(BalanceNotice.from_result(welcome), s.locale)
        return Linked(created, returning and not created, (Reply(notice),))

    async def _join(
        self, company: Company, phone: str, chat_id: str, s: Session, mine: Client | None
    ) -> clients.JoinedClient | None:
        try:
            return await clients.join_by_phone(
                company, phone, whatsapp_chat_id=chat_id, name=s.name, locale=s.data.get("locale")
            )
        except clients.PhoneTaken:
            pass
        # The chat had a card without a phone (its number was hidden) and the number, now
        # known, is another card's: an untouched phoneless card steps aside; one with history
        # is left for the salon to merge.
        if mine is None or mine.phone is not None:
            return None
        if mine.balance or await LedgerEntry.exists(client_id=mine.id):
            log.warning(
                "WhatsApp chat %s: client %s has history and %s is another client's; "
                "the salon should merge them",
                mask_chat_id(chat_id),
                mine.id,
                mask_phone(phone),
            )
            return None
        await Client.filter(id=mine.id).update(whatsapp_chat_id=None)
        return await clients.join_by_phone(
            company, phone, whatsapp_chat_id=chat_id, name=s.name, locale=s.data.get("locale")
        )

    async def _greeting(self, s: Session, *, created: bool, returning: bool) -> list[Reply]:
        if created or s.client is None:
            if s.company is None:
                raise RuntimeError("a greeting outside a salon")
            text = s._("Welcome to {salon}! Here you book visits and collect bonuses.").format(
                salon=s.company.title or s._("the salon")
            )
            return [Reply(text, menu=await self.dialog.menu(s))]
        return await self.dialog.welcome(s, returning=returning)

    async def _route(
        self, s: Session, text: str, offered: Mapping[str, Any], *, first: bool = False
    ) -> list[Reply] | None:
        """The answer to `text`; None when nothing understood it."""
        dialog = self.dialog
        key = menu.key(text)
        confirm = offered.get("confirm")
        if isinstance(confirm, dict) and (key in menu.YES or key in menu.NO):
            token = str(confirm.get("token") or "")
            if key in menu.NO:
                return await dialog.action(s, f"rx:{token}")
            if time.time() - float(confirm.get("at") or 0) > CONFIRM_WITHIN.total_seconds():
                s.go(None, redeem=None)
                return [Reply(s._("The two minutes to confirm are over: nothing was redeemed."))]
            return await dialog.action(s, f"rc:{token}")
        options = offered.get("options") or []
        if text.isdigit() and 1 <= int(text) <= len(options):
            return await dialog.action(s, str(options[int(text) - 1]))
        # What is left is what every typed channel understands (the console too).
        return await menu.answer(dialog, s, text, first=first)

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
