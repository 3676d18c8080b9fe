"""The conversation, channel-neutral: intents in, replies out.

A channel turns what arrives into one of these calls — `start` (with a deep-link payload),
`contact` (a phone the channel vouches for), `intent` (a command or a menu label), `text`
(anything typed), `action` (a pressed button) — after `prepare`, and renders the replies. The
person's flow state lives in the Session, which the channel keeps between turns.

Deep-link payloads: `salon-<yclients_id>` binds the chat to that salon; `staff-<token>` accepts
a staff invite (core.staff).
"""

from __future__ import annotations

from bot.dialog.client import ClientFlows
from bot.dialog.menu import COMMANDS, STAFF_INTENTS, Intent, intent_for
from bot.dialog.replies import Button, Reply, rows
from bot.dialog.session import Session
from bot.dialog.staff import StaffFlows
from core import codes
from core.i18n import pick_locale
from core.models import Client, Company, Staff

SALON_PREFIX = "salon-"
STAFF_PREFIX = "staff-"


class Dialog(ClientFlows, StaffFlows):
    async def prepare(self, s: Session) -> None:
        """Load the salon, the client and the language for this turn."""
        if s.company_id is None:
            only = await self._companies(s)
            if len(only) == 1:
                s.bind(only[0])
        if s.company_id is not None and (s.company is None or s.company.id != s.company_id):
            s.company = await self.companies.get(s.company_id)
            if s.company is None:
                s.go(None)
                s.data.pop("company_id", None)
        await self._load_client(s)
        s.locale = pick_locale(
            s.client.locale if s.client else None, s.data.get("locale"), s.language_hint
        )

    async def _load_client(self, s: Session) -> None:
        s.client = None
        if s.company is None:
            return
        s.client = await Client.get_or_none(company_id=s.company.id, **s.identity)
        await self._remember_channel(s)

    async def _remember_channel(self, s: Session) -> None:
        if (
            s.client is not None
            and s.channel.remembered
            and s.client.last_channel != s.channel.name
        ):
            # Balance notices follow the client to the channel they used last.
            s.client.last_channel = s.channel.name
            await Client.filter(id=s.client.id).update(last_channel=s.channel.name)

    async def _companies(self, s: Session) -> list[Company]:
        """The salons this person is a client or staff member of."""
        ids = set(await Client.filter(**s.identity).values_list("company_id", flat=True))
        if s.staff_identity:
            ids |= set(
                await Staff.filter(active=True, **s.staff_identity).values_list(
                    "company_id", flat=True
                )
            )
        if not ids:
            return []
        return list(await Company.filter(id__in=ids).order_by("title", "id"))

    async def start(self, s: Session, payload: str | None = None) -> list[Reply]:
        payload = (payload or "").strip()
        s.go(None)
        if payload.startswith(SALON_PREFIX):
            company = None
            yclients_id = payload.removeprefix(SALON_PREFIX)
            if yclients_id.isdigit() and len(yclients_id) < 19:
                company = await Company.get_or_none(yclients_id=int(yclients_id))
            if company is None:
                return [Reply(s._("This salon link is not valid.")), *self.no_salon(s)]
            s.bind(company)
            await self._load_client(s)
            return await self.welcome(s)
        if payload.startswith(STAFF_PREFIX):
            return await self.join_staff(s, payload.removeprefix(STAFF_PREFIX))
        if s.company is not None:
            return await self.welcome(s)
        choices = await self._companies(s)
        if len(choices) > 1:
            buttons = [
                Button(c.title or str(c.yclients_id), action=f"salon:{c.id}") for c in choices
            ]
            return [Reply(s._("Which salon?"), buttons=rows(*buttons[:20]))]
        return self.no_salon(s)

    async def contact(self, s: Session, phone: str) -> list[Reply]:
        return await self.joined(s, phone)

    async def intent(self, s: Session, intent: Intent, args: str = "") -> list[Reply]:
        if intent in STAFF_INTENTS:
            flow = {Intent.REDEEM: self.redeem, Intent.LOOKUP: self.lookup}.get(intent, self.adjust)
            replies = await flow(s, args)
            return replies if replies is not None else await self.unknown(s)
        s.go(None)
        if intent is Intent.CANCEL:
            s.go(None, redeem=None)
            return [Reply(s._("Cancelled."), menu=await self.menu(s))]
        if intent is Intent.LANGUAGE:
            return await (self.set_language(s, args.strip()) if args else self.language(s))
        if intent is Intent.HELP:
            return await self.help(s)
        return await self.client_intent(s, intent)

    async def text(self, s: Session, text: str) -> list[Reply]:
        text = text.strip()
        if text.startswith("/"):
            command, _sep, args = text[1:].partition(" ")
            command = command.split("@", 1)[0].lower()
            if command == "start":
                return await self.start(s, args)
            known = COMMANDS.get(command)
            return await (self.intent(s, known, args) if known else self.unknown(s))
        menu_intent = intent_for(text)
        if menu_intent is not None:
            return await self.intent(s, menu_intent)
        replies = await self._flow_step(s, text)
        return replies if replies is not None else await self.unknown(s)

    async def _flow_step(self, s: Session, text: str) -> list[Reply] | None:
        if s.state == "redeem:code":
            return await self.redeem(s, text)
        if s.state == "redeem:amount":
            return await self.redeem_amount(s, text)
        if s.state == "lookup":
            return await self.lookup(s, text)
        if s.state and s.state.startswith("adjust:"):
            return await self.adjust_step(s, text)
        if codes.parse(text) is not None:
            # A code sent on its own (typed, or scanned from the client's QR): staff redeem.
            return await self.redeem(s, text)
        return None

    async def action(self, s: Session, action: str) -> list[Reply]:
        verb, _sep, arg = action.partition(":")
        simple = {
            "book": Intent.BOOK,
            "bal": Intent.BALANCE,
            "visits": Intent.VISITS,
            "code": Intent.MY_CODE,
            "help": Intent.HELP,
        }
        if verb in simple and not arg:
            return await self.intent(s, simple[verb])
        if verb == "lang":
            return await (self.set_language(s, arg) if arg else self.language(s))
        if verb == "hist" and arg.isdigit():
            return await self.history(s, int(arg))
        if verb == "salon" and arg.isdigit():
            company = await Company.get_or_none(id=int(arg))
            if company is not None:
                s.bind(company)
                await self._load_client(s)
                return await self.welcome(s)
        if verb == "rc" and arg:
            return await self.confirm_redeem(s, arg)
        if verb == "rx" and arg:
            return await self.cancel_redeem(s, arg)
        if verb == "aj" and arg.isdigit():
            replies = await self.adjust_client(s, int(arg))
            return replies if replies is not None else await self.unknown(s)
        if verb == "stop":
            s.go(None)
            return [Reply(s._("Cancelled."), edit=True)]
        return [Reply(s._("This button is no longer active."))]
