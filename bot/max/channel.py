"""The MAX channel: a MAX update in, the dialog's answer out. It only translates, in the
Telegram and WhatsApp adapters' shape: parse → Session → dialog → render → send.

- **Parse.** `Incoming.parse` keeps what is answered in a dialog with the bot: `bot_started`
  (Start, with a deep link's payload `salon-<id>` or `staff-<token>`), `message_created` in a
  dialog (text, or a shared contact), `message_callback` (a pressed button's payload, parsed
  with bot.dialog.actions) and `bot_stopped` (the person blocked the bot: their cards are
  marked unreachable until they write again). One Salonbot bot serves every salon, so the
  salon comes from the deep link, as in Telegram.
- **The phone.** A contact counts only when MAX vouches for it (core.max.read_contact: the hash
  verifies and the card is the sender's own); then it joins the salon's client with that phone
  (core.clients.join_by_phone) and is kept on the chat, where staff are known by it. Any other
  card is refused like a typed number: the person is asked for their own with the button, and
  nobody's balance opens.
- **Session** from the chat's stored state (`MaxChat`), keyed by the message (or the press) for
  the idempotency of what the turn writes; the same update delivered again (a webhook retry)
  is dropped by its `mid`/`callback_id`. One update at a time per person.
- **Render** (bot.max.render) and **send** through core.max's client, which keeps MAX's limit
  of 2 actions a second per chat and waits out a 429. A press is answered first: with the
  reply that replaces the pressed message (a redeem's outcome), else with a short toast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError

from bot.dialog import MAX, Dialog, Reply, Session, actions
from bot.max.render import Outgoing, render
from bot.outbound import mark_gone
from core.i18n import gettext, pick_locale
from core.max import MaxBlocked, MaxClient, MaxError, read_contact
from core.models import Client, MaxChat
from core.phones import normalize_phone

log = logging.getLogger(__name__)

CHANNEL = MAX.name
# What a press is answered with when its reply is a new message rather than an edit (MAX
# refuses an empty answer, and a press left unanswered keeps spinning).
PRESSED = "✓"
_SEEN = 10_000


@dataclass(frozen=True, slots=True)
class Incoming:
    kind: str
    user_id: int
    # What this update is known by when delivered again: the message's mid, the callback id.
    ref: str
    name: str = ""
    locale: str | None = None
    text: str = ""
    payload: str | None = None
    contact: Mapping[str, Any] | None = None
    callback_id: str | None = None

    @classmethod
    def parse(cls, update: Mapping[str, Any]) -> Incoming | None:
        """None for what is not answered: groups, channels, other bots, unknown kinds."""
        kind = update.get("update_type")
        locale = update.get("user_locale")
        locale = locale if isinstance(locale, str) else None
        if kind in ("bot_started", "bot_stopped"):
            user = _user(update.get("user"))
            if user is None:
                return None
            payload = update.get("payload")
            ref = f"{kind}:{user[0]}:{update.get('timestamp')}"
            return cls(
                kind, user[0], ref, user[1], locale, payload=str(payload or "")[:128] or None
            )
        if kind == "message_callback":
            callback = update.get("callback")
            if not isinstance(callback, Mapping):
                return None
            user = _user(callback.get("user"))
            callback_id = callback.get("callback_id")
            if user is None or not isinstance(callback_id, str) or not callback_id:
                return None
            payload = callback.get("payload")
            return cls(
                kind,
                user[0],
                f"cb:{callback_id}",
                user[1],
                locale,
                payload=payload if isinstance(payload, str) else None,
                callback_id=callback_id,
            )
        if kind == "message_created":
            return cls._message(update, locale)
        return None

    @classmethod
    def _message(cls, update: Mapping[str, Any], locale: str | None) -> Incoming | None:
        message = update.get("message")
        if not isinstance(message, Mapping):
            return None
        recipient = message.get("recipient")
        if not isinstance(recipient, Mapping) or recipient.get("chat_type") != "dialog":
            return None
        user = _user(message.get("sender"))
        body = message.get("body")
        if user is None or not isinstance(body, Mapping) or not isinstance(body.get("mid"), str):
            return None
        text = body.get("text")
        contact = None
        attachments = body.get("attachments")
        for attachment in attachments if isinstance(attachments, list) else []:
            if isinstance(attachment, Mapping) and attachment.get("type") == "contact":
                payload = attachment.get("payload")
                contact = payload if isinstance(payload, Mapping) else {}
        return cls(
            "message_created",
            user[0],
            f"msg:{body['mid']}",
            user[1],
            locale,
            text=text.strip() if isinstance(text, str) else "",
            contact=contact,
        )


def _user(data: object) -> tuple[int, str] | None:
    """(user id, name) of a person; None for a bot or a malformed user."""
    if not isinstance(data, Mapping) or data.get("is_bot") is True:
        return None
    user_id = data.get("user_id")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id < 2**63:
        return None
    name = data.get("first_name") or data.get("name") or ""
    return user_id, str(name)[:255]


class MaxBot:
    def __init__(self, client: MaxClient, dialog: Dialog, token: str) -> None:
        self.client = client
        self.dialog = dialog
        # Contacts' hashes are keyed with the bot's token.
        self._token = token
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}
        self.username: str | None = None

    async def handle(self, update: Mapping[str, Any]) -> None:
        """One update from polling or the webhook."""
        incoming = Incoming.parse(update)
        if incoming is None or self._repeated(incoming.ref):
            return
        async with self._turn(incoming.user_id):
            if incoming.kind == "bot_stopped":
                await mark_unreachable(incoming.user_id)
                return
            try:
                await self._answer(incoming)
            except Exception:
                log.exception("MAX: update %s failed", incoming.ref)
                locale = pick_locale(incoming.locale)
                text = gettext(locale, "Sorry, something went wrong. Please try again.")
                with contextlib.suppress(MaxError):
                    await self.client.send(incoming.user_id, {"text": text})

    def _repeated(self, ref: str) -> bool:
        if ref in self._seen:
            return True
        self._seen[ref] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        return False

    @contextlib.asynccontextmanager
    async def _turn(self, user_id: int) -> AsyncIterator[None]:
        """One update at a time per person (polling hands over batches, webhooks overlap)."""
        lock, users = self._locks.get(user_id) or (asyncio.Lock(), 0)
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users == 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)

    async def _answer(self, incoming: Incoming) -> None:
        chat = await MaxChat.get_or_none(user_id=incoming.user_id)
        new = chat is None
        if chat is None:
            chat = MaxChat(user_id=incoming.user_id, data={})
        before = (chat.phone, chat.state, chat.data)
        s = Session(
            MAX,
            identity={"max_user_id": incoming.user_id},
            # Staff are known by a phone MAX vouched for, never by a typed one.
            staff_identity={"phone": chat.phone} if chat.phone else {},
            name=incoming.name,
            language_hint=incoming.locale,
            state=chat.state,
            data=dict(chat.data or {}),
            message_ref=f"max:{incoming.ref}",
        )
        await self.dialog.prepare(s)
        if s.client is not None and CHANNEL in (s.client.unreachable or {}):
            # They write again: messages may go to them here again.
            unreachable = {k: v for k, v in s.client.unreachable.items() if k != CHANNEL}
            s.client.unreachable = unreachable
            await Client.filter(id=s.client.id).update(unreachable=unreachable)
        replies = await self._replies(s, chat, incoming)
        chat.state, chat.data = s.state, s.data
        await _save(chat, new, before)
        await self.send(incoming.user_id, replies, callback_id=incoming.callback_id)

    async def _replies(self, s: Session, chat: MaxChat, incoming: Incoming) -> list[Reply]:
        if incoming.kind == "bot_started":
            return await self.dialog.start(s, incoming.payload)
        if incoming.kind == "message_callback":
            return await self.dialog.action(s, actions.parse(incoming.payload))
        if incoming.contact is not None:
            return await self._contact(s, chat, incoming)
        if incoming.text:
            return await self.dialog.text(s, incoming.text)
        return await self.dialog.unknown(s)

    async def _contact(self, s: Session, chat: MaxChat, incoming: Incoming) -> list[Reply]:
        contact = read_contact(self._token, incoming.contact or {}, incoming.user_id)
        phone = normalize_phone(contact.phone) if contact.verified else None
        if phone is None:
            # Someone else's card, a forged or missing hash: it proves nothing about the
            # sender's number, like a typed one.
            refusal = Reply(s._("Please share your own phone number with the button below."))
            return [refusal, *self.dialog.ask_phone(s)]
        chat.phone = phone
        s.staff_identity = {"phone": phone}
        return await self.dialog.contact(s, phone)

    async def send(
        self, user_id: int, replies: Sequence[Reply], *, callback_id: str | None = None
    ) -> None:
        """The replies to a person; a press (`callback_id`) is answered first. A person who
        blocked the bot is marked unreachable and the rest dropped."""
        try:
            await send_replies(self.client, user_id, replies, callback_id=callback_id)
        except MaxBlocked:
            log.info("MAX user %s blocked the bot: marked unreachable", user_id)
            await mark_unreachable(user_id)
        except MaxError as exc:
            log.warning("MAX answer to user %s not delivered: %s", user_id, exc)


async def send_replies(
    client: MaxClient, user_id: int, replies: Sequence[Reply], *, callback_id: str | None = None
) -> None:
    """Render and send; a press (`callback_id`) is answered first. Raises core.max's errors."""
    out = render(replies)
    if callback_id is not None:
        if out and out[0].edit:
            await client.answer(callback_id, user_id, message=out[0].body)
            out = out[1:]
        else:
            await client.answer(callback_id, user_id, notification=PRESSED)
    for message in out:
        await client.send(user_id, await _with_image(client, message))


async def _with_image(client: MaxClient, message: Outgoing) -> dict[str, Any]:
    if message.image is None:
        return message.body
    payload = await client.upload_image(message.image.png, message.image.filename)
    image = {"type": "image", "payload": payload}
    return {**message.body, "attachments": [image, *message.body["attachments"]]}


async def mark_unreachable(user_id: int) -> None:
    """Nothing reaches this person in MAX until they write again (their cards in every salon:
    one MAX user, one dialog with the bot)."""
    for client in await Client.filter(max_user_id=user_id).only("id"):
        await mark_gone(client.id, CHANNEL)


async def _save(chat: MaxChat, new: bool, before: tuple[Any, ...]) -> None:
    if new:
        try:
            await chat.save()
        except IntegrityError:
            # The same person's first update, handled by another replica meanwhile.
            log.info("MAX chat of user %s was created concurrently", chat.user_id)
        return
    if (chat.phone, chat.state, chat.data) != before:
        await MaxChat.filter(id=chat.id).update(phone=chat.phone, state=chat.state, data=chat.data)
