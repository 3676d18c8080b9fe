"""The conversation, channel-neutral: intents in, replies out.

A channel turns what arrives into one of these calls — `start` (with a deep-link payload),
`contact` (a phone the channel vouches for), `intent` (a command or a menu label), `text`
(anything typed), `action` (a pressed button, parsed with bot.dialog.actions) — after
`prepare` (and `arrive` in a channel that knows the sender's number without asking), and
renders the replies. The person's flow state lives in the Session, which the channel keeps
between turns.

Deep-link payloads: `salon-<yclients_id>` binds the chat to that salon; `staff-<token>` accepts
a staff invite (core.staff).
"""

from __future__ import annotations

from bot.dialog import actions
from bot.dialog.actions import Action
from bot.dialog.client import ClientFlows
from bot.dialog.menu import COMMANDS, STAFF_INTENTS, Intent, intent_for
from bot.dialog.questions import QuestionFlows
from bot.dialog.replies import Button, Reply, rows
from bot.dialog.session import Session
from bot.dialog.staff import StaffFlows
from bot.dialog.visit import REVIEW_STATE, VisitFlows
from core import clients, codes
from core.i18n import pick_locale
from core.models import Client, Company, Staff
from core.notifications import BalanceNotice, render

SALON_PREFIX = "salon-"
STAFF_PREFIX = "staff-"


class Dialog(ClientFlows, StaffFlows, QuestionFlows, VisitFlows):
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
        self._choose_locale(s)

    @staticmethod
    def _choose_locale(s: Session) -> None:
        # The client's own choice, then the chat's (made before the client was known), then
        # what the channel suggests (Telegram's language_code, the salon's default).
        s.locale = pick_locale(
            s.client.locale if s.client else None, s.data.get("locale"), s.language_hint
        )

    async def _load_client(self, s: Session) -> None:
        s.client = None
        if s.company is None:
            return
        s.client = await Client.get_or_none(company_id=s.company.id, **s.identity)
        if s.client is not None and s.channel.remembered:
            await clients.remember_channel(s.client, s.channel.name)

    async def arrive(self, s: Session, *, phone: str | None, first: bool) -> list[Reply]:
        """Before a turn in a channel that knows the sender's number without asking (WhatsApp:
        `phone`, verified and normalised, or None while it stays hidden): tie the chat to the
        salon's client (core.clients.link_chat), tell a welcome bonus it earned, and greet a
        `first` message of the chat. Call after prepare(), with the salon bound."""
        if s.company is None:
            raise RuntimeError("arrive needs a bound salon")
        linked = await clients.link_chat(
            s.company,
            whatsapp_chat_id=str(s.identity["whatsapp_chat_id"]),
            phone=phone,
            current=s.client,
            channel=s.channel.name,
            name=s.name,
            locale=s.data.get("locale"),
        )
        s.client = linked.client
        self._choose_locale(s)
        replies: list[Reply] = []
        if linked.welcome is not None:
            replies.append(Reply(render(BalanceNotice.from_result(linked.welcome), s.locale)))
        if not first:
            return replies
        if linked.created or s.client is None:
            # A new card: no phone to ask for (the channel vouches for it or cannot) and no
            # balance to show beyond the welcome bonus told above.
            text = s._("Welcome to {salon}! Here you book visits and collect bonuses.")
            text = text.format(salon=s.company.title or s._("the salon"))
            return [*replies, Reply(text, menu=await self.menu(s))]
        return [*replies, *await self.welcome(s, returning=linked.returning)]

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
                Button(c.title or str(c.yclients_id), action=actions.PickSalon(c.id))
                for c in choices
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
        if intent is Intent.REMINDERS:
            return await self.the_say(s)
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
        replies = await self.loop_word(s, text)
        if replies is not None:
            return replies
        replies = await self._flow_step(s, text)
        return replies if replies is not None else await self.unknown(s, text)

    async def _flow_step(self, s: Session, text: str) -> list[Reply] | None:
        if s.state == "redeem:code":
            return await self.redeem(s, text)
        if s.state == "redeem:amount":
            return await self.redeem_amount(s, text)
        if s.state == "lookup":
            return await self.lookup(s, text)
        if s.state and s.state.startswith("adjust:"):
            return await self.adjust_step(s, text)
        if s.state == REVIEW_STATE:
            return await self.review_comment(s, text)
        if codes.parse(text) is not None:
            # A code sent on its own (typed, or scanned from the client's QR): staff redeem.
            return await self.redeem(s, text)
        return None

    async def action(self, s: Session, action: Action | None) -> list[Reply]:
        """A pressed button (the channel parsed its data: bot.dialog.actions); None for data
        that is no action of today's vocabulary."""
        match action:
            case actions.Book() | actions.Balance() | actions.Visits() | actions.MyCode():
                return await self.intent(s, _SHOWS[type(action)])
            case actions.Help():
                return await self.intent(s, Intent.HELP)
            case actions.Language(locale=locale):
                return await (self.set_language(s, locale) if locale else self.language(s))
            case actions.History(before_id=before_id):
                return await self.history(s, before_id)
            case actions.PickSalon(company_id=company_id):
                company = await Company.get_or_none(id=company_id)
                if company is not None:
                    s.bind(company)
                    await self._load_client(s)
                    return await self.welcome(s)
            case actions.ConfirmRedeem(token=token):
                return await self.confirm_redeem(s, token)
            case actions.CancelRedeem(token=token):
                return await self.cancel_redeem(s, token)
            case actions.AdjustClient(client_id=client_id):
                replies = await self.adjust_client(s, client_id)
                return replies if replies is not None else await self.unknown(s)
            case actions.VisitAnswer() | actions.Rating() | actions.Say():
                return await self.loop_action(s, action)
            case actions.Stop():
                s.go(None)
                return [Reply(s._("Cancelled."), edit=True)]
        return [Reply(s._("This button is no longer active."))]


_SHOWS: dict[type[Action], Intent] = {
    actions.Book: Intent.BOOK,
    actions.Balance: Intent.BALANCE,
    actions.Visits: Intent.VISITS,
    actions.MyCode: Intent.MY_CODE,
}
