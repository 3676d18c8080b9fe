"""A person behind the bot: what a client writes that no menu word, command or number takes —
a question in words, a photo, a voice note, a document — goes to the salon's admins (through
bot.outbound, on the channel each admin uses), and an admin's reply goes back to the client on
the client's channel.

An admin replies to the notification itself (Telegram: a reply to the message; WhatsApp: a
quoted reply), which `AdminRelay` maps back to the client, or writes «ответ <code> <text>»
(«reply <code> <text>») anywhere the bot reads text, the console included. Who may answer is
read from Staff every time: an active admin of the salon, or the staff member the question was
sent to (a salon without admins sends questions to all its staff).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError

from bot.dialog.base import Flows, is_admin
from bot.dialog.replies import Reply
from bot.dialog.session import Session
from bot.outbound import Delivery, Sent
from core import staff as staff_service
from core.i18n import _, gettext
from core.models import AdminRelay, Client, Company, Staff

log = logging.getLogger(__name__)

# How the channels are named to the admins (brand names: not translated).
CHANNEL_NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp", "max": "MAX", "web": "web chat"}
# The explicit form of an answer: the verb, the client's code, the text.
ANSWER_VERBS = frozenset({"ответ", "ответить", "reply", "answer"})
# The longest question passed on (a WhatsApp message can be 65 536 characters; a Telegram one
# 4096, the notification adds its own lines).
_QUESTION_MAX = 3000


@dataclass(frozen=True, slots=True)
class Media:
    """Something a client sent that is not text: its kind ("photo", "voice", "video",
    "document", "sticker", "file") and the caption, if any."""

    kind: str
    caption: str = ""


def looks_like_question(text: str) -> bool:
    """Words for a person rather than for the bot: two words or more with letters, or a
    question mark after at least one (a lone "12" or "ок" is not one)."""
    words = [word for word in text.split() if any(ch.isalpha() for ch in word)]
    return len(words) >= 2 or (len(words) == 1 and "?" in text)


def channel_name(name: str) -> str:
    return CHANNEL_NAMES.get(name, name)


class QuestionFlows(Flows):
    async def question(
        self, s: Session, text: str = "", media: Media | None = None
    ) -> list[Reply] | None:
        """Pass a client's message on to the salon's admins; None when it is not one to pass
        on (not a question, no client card yet, or the sender is the salon's staff)."""
        text = text.strip()
        if s.company is None or s.client is None:
            return None
        if media is None and not looks_like_question(text):
            return None
        if await self.staff(s) is not None:
            # Staff type commands; a misspelt one is not a client's question.
            return None
        client, company, channel = s.client, s.company, s.channel.name

        def compose(locale: str) -> list[Reply]:
            return [Reply(_question_text(locale, client, channel, text, media))]

        async def remember(sent: Sent) -> None:
            await _relay(company, client, sent)

        reached = await self.outbound.to_admins(company.id, compose, on_sent=remember)
        if not reached:
            log.warning("salon %s: a client's question reached no staff", company.id)
            return None
        return [
            Reply(
                s._(
                    "Thank you! I passed your message to the salon's administrator; the answer "
                    "will come here, in this chat."
                )
            )
        ]

    async def relayed_answer(
        self, s: Session, channel: str, chat: str | None, message_id: str, text: str
    ) -> list[Reply] | None:
        """A reply to the message `message_id` in `chat` on `channel` (`chat` None where message
        ids are unique across chats, WhatsApp's): when that message was a client's question
        sent to staff, the answer goes to the client. None when it was not one (the channel
        reads the text as usual)."""
        found = AdminRelay.filter(channel=channel, message_id=message_id)
        relay = await (found if chat is None else found.filter(chat=chat)).first()
        if relay is None:
            return None
        staff = await self._answering_staff(s, relay.company_id, relay.staff_id)
        if staff is None:
            return [Reply(s._("Only the salon's administrators can answer clients."))]
        client = await Client.get_or_none(id=relay.client_id)
        if client is None:
            return [Reply(s._("This client is no longer in the salon's list."))]
        return await self._answer(s, client, text)

    async def coded_answer(self, s: Session, text: str) -> list[Reply] | None:
        """«ответ <code> <text>»: None when the text is not that, or the sender is no admin."""
        verb, _sep, rest = text.strip().partition(" ")
        if verb.casefold() not in ANSWER_VERBS or s.company is None:
            return None
        staff = await self._answering_staff(s, s.company.id, None)
        if staff is None:
            return None
        code, _sep, answer = rest.strip().partition(" ")
        if not answer.strip():
            return [Reply(s._("Write it like this: ответ CODE your answer"))]
        found = await staff_service.find_client(staff, code)
        if found.client is None:
            return [Reply(s._("No client with this code. Check it and try again."))]
        return await self._answer(s, found.client, answer)

    async def _answering_staff(
        self, s: Session, company_id: int, addressee_id: int | None
    ) -> Staff | None:
        if not s.staff_identity:
            return None
        staff = await staff_service.active_staff(company_id, **s.staff_identity)
        if staff is None or not (is_admin(staff) or staff.id == addressee_id):
            return None
        return staff

    async def _answer(self, s: Session, client: Client, text: str) -> list[Reply]:
        text = text.strip()
        if not text:
            return [Reply(s._("The answer is empty: write the text to send."))]
        company = await Company.get(id=client.company_id)
        salon = company.title or str(company.yclients_id)
        outcome, channel = await self.outbound.client_send(
            client, lambda _locale: [Reply(f"💬 {salon}:\n{text}")], company
        )
        name = client.name or client.phone or client.code
        if outcome is Delivery.SENT and channel is not None:
            done = s._("Sent to {name} in {channel}.")
            return [Reply(done.format(name=name, channel=channel_name(channel)))]
        if outcome is Delivery.RETRY:
            later = s._(
                "{name}'s messenger is not accepting messages right now. Please try again in "
                "a few minutes."
            )
            return [Reply(later.format(name=name))]
        lost = s._(
            "Could not deliver the answer: {name} cannot be reached in any messenger. Please "
            "call them."
        )
        return [Reply(lost.format(name=name))]


def _question_text(
    locale: str, client: Client, channel: str, text: str, media: Media | None
) -> str:
    who = gettext(locale, "{name}, {phone}, {channel}").format(
        name=client.name or gettext(locale, "A client"),
        phone=client.phone or gettext(locale, "phone not shared"),
        channel=channel_name(channel),
    )
    lines = [gettext(locale, "A question from a client — {who}:").format(who=who), ""]
    if media is not None:
        kind = gettext(locale, _MEDIA.get(media.kind, _MEDIA["file"]))
        if channel == "whatsapp":
            where = _("The client sent {what}: open the chat in the salon's WhatsApp to see it.")
        else:
            where = _(
                "The client sent {what} in {channel}; the bot cannot show it here. Reply to "
                "ask them to describe it in words."
            )
        lines.append(gettext(locale, where).format(what=kind, channel=channel_name(channel)))
    quoted = (text or (media.caption if media else "")).strip()
    if quoted:
        if len(quoted) > _QUESTION_MAX:
            quoted = quoted[:_QUESTION_MAX] + "…"
        lines.append(quoted)
    lines += [
        "",
        gettext(
            locale,
            "Reply to this message and I will send your answer to the client. Or write: "
            "ответ {code} your answer",
        ).format(code=client.code),
    ]
    return "\n".join(lines)


_MEDIA = {
    "photo": _("a photo"),
    "voice": _("a voice message"),
    "video": _("a video"),
    "document": _("a document"),
    "sticker": _("a sticker"),
    "file": _("a file"),
}


async def _relay(company: Company, client: Client, sent: Sent) -> None:
    chat = sent.to.addresses.get(sent.channel)
    if chat is None:
        return
    for message_id in sent.message_ids:
        try:
            await AdminRelay.create(
                company_id=company.id,
                client_id=client.id,
                staff_id=sent.to.staff_id,
                channel=sent.channel,
                chat=chat,
                message_id=message_id,
            )
        except IntegrityError:
            log.info("relay for %s %s:%s exists already", sent.channel, chat, message_id)
