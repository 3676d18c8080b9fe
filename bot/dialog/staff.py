"""A staff member's side: joining, redeeming a client's bonuses, looking a client up, and (for
admins) adjusting a balance.

Every step reads the staff row again (core.staff.active_staff). Codes go through
core.staff.find_client, which counts wrong ones and locks code entry after too many; a
malformed code, an unknown one and another salon's all get the same "not found".

A redeem asks for confirmation with two buttons carrying a token derived from the message that
asked for it (Session.turn_token): the pending request stays in the chat's data, the ledger
entry's idempotency key is `redeem:<token>`, so a double tap, two replicas handling both taps,
or the request and its tap delivered again, debit once. The confirmation counts within
CONFIRM_WITHIN of the question, whatever the channel. An adjustment's key is
`adjust:<token>` of the message that completes it, so a redelivered `/adjust` changes nothing
twice.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bot.dialog import actions, formats
from bot.dialog.base import Flows, is_admin
from bot.dialog.formats import NBSP
from bot.dialog.replies import Button, Reply, rows
from bot.dialog.session import Session
from core import codes, ledger
from core import staff as staff_service
from core.i18n import ngettext
from core.models import Booking, BookingStatus, Client, LedgerEntry, Staff
from core.notifications import BalanceNotice
from core.phones import mask_phone, normalize_phone

# How long a redeem waits for its confirmation, in every channel (a button in Telegram,
# «да» in WhatsApp and the console).
CONFIRM_WITHIN = timedelta(minutes=2)
_NUMBER = re.compile(r"^[+\-−]?\d{1,7}$")


def _amount(text: str) -> int | None:
    """A signed whole number of points as people type it (`100`, `+100`, `-50`, `−50`)."""
    text = text.strip().replace(" ", "")
    if not _NUMBER.match(text):
        return None
    return int(text.replace("−", "-"))


_BILL = re.compile(r"^(\d{1,7})(?:[.,]\d{1,2})?(?:₽|р|руб|rub)?\.?$")


def _bill(text: str) -> int | None:
    """A bill in whole roubles as people type it (`2500`, `2 500`, `2500 ₽`, `2500р`); kopecks
    are dropped (bonuses are whole roubles)."""
    match = _BILL.match(text.strip().lower().replace(" ", "").replace(NBSP, ""))
    bill = int(match[1]) if match else 0
    return bill if bill > 0 else None


def _cap(bill: int, percent: int, balance: int) -> int:
    """The most bonuses may pay of `bill`: its `percent`, and never more than the balance."""
    return min(bill * percent // 100, balance)


def split_code(text: str) -> tuple[str, list[str]]:
    """(the code as typed, the words after it). A code may be typed with spaces
    (`7KQ M2X 9PA 100`), so the shortest run of words that parses as a code wins."""
    words = text.split()
    for end in range(1, min(len(words), 3) + 1):
        if codes.parse("".join(words[:end])):
            return "".join(words[:end]), words[end:]
    return (words[0] if words else ""), words[1:]


class StaffFlows(Flows):
    def _not_found(self, s: Session) -> list[Reply]:
        return [Reply(s._("No client found. Check the code and try again."))]

    def _locked(self, s: Session, until: datetime) -> list[Reply]:
        text = s._(
            "Too many wrong codes. Code entry is locked until {time}; ask the client to show "
            "the code from the bot."
        )
        return [Reply(text.format(time=formats.clock(until, s.company)))]

    def _cancel_button(self, s: Session) -> tuple[tuple[Button, ...], ...]:
        return rows(Button(s._("✖️ Cancel"), action=actions.Stop()))

    def _card(self, s: Session, client: Client) -> str:
        return s._("{name}, {phone}\nBalance: {balance}").format(
            name=formats.first_name(client.name),
            phone=mask_phone(client.phone),
            balance=client.balance,
        )

    async def _find(
        self, s: Session, staff: Staff, text: str, *, by_phone: bool = False
    ) -> tuple[Client | None, list[Reply] | None, bool]:
        """(the client, or the refusal, and whether another try is possible: False when code
        entry is locked, this wrong code included)."""
        found = await staff_service.find_client(staff, text, by_phone=by_phone)
        if found.locked_until is not None:
            return None, self._locked(s, found.locked_until), False
        if found.client is None:
            # This wrong code may be the one that locked code entry: then "try again" would
            # promise what the next message cannot get.
            fresh = await Staff.get_or_none(id=staff.id)
            until = staff_service.locked_until(fresh) if fresh is not None else None
            if until is not None:
                return None, self._locked(s, until), False
            return None, self._retry(s), True
        return found.client, None, False

    def _retry(self, s: Session) -> list[Reply]:
        """Not found, with the flow left open for the next try (and a way out)."""
        return [Reply(self._not_found(s)[0].text, buttons=self._cancel_button(s))]

    # --- joining ---

    async def join_staff(self, s: Session, token: str) -> list[Reply]:
        telegram_id = s.identity.get("telegram_user_id")
        joined = (
            await staff_service.accept_invite(token, telegram_user_id=int(telegram_id), name=s.name)
            if telegram_id is not None
            else None
        )
        if joined is None:
            return [
                Reply(
                    s._(
                        "This staff invite is not valid: it was used already or has expired. "
                        "Ask the salon owner for a new one."
                    )
                )
            ]
        s.bind(joined.company)
        s.go(None)
        role = s._("an admin") if is_admin(joined.staff) else s._("staff")
        text = s._(
            "You joined {salon} as {role}. Send a client's code to redeem bonuses; "
            "/help lists what you can do."
        ).format(salon=joined.company.title or s._("the salon"), role=role)
        return [Reply(text, menu=await self.menu(s))]

    # --- redeem ---

    async def redeem(self, s: Session, args: str = "") -> list[Reply] | None:
        """None when this person is not staff (the caller answers as to any unknown text)."""
        staff = await self.staff(s)
        if staff is None:
            return None
        code, rest = split_code(args)
        if not code:
            s.go("redeem:code")
            return [
                Reply(
                    s._("Send the client's code (or scan their QR code)."),
                    buttons=self._cancel_button(s),
                )
            ]
        client, refused, retry = await self._find(s, staff, code)
        if refused is not None or client is None:
            # A wrong code leaves the redeem open: the next message is the next try.
            s.go("redeem:code" if retry else None)
            return refused
        return await self._redeem_for(s, client, " ".join(rest) or None)

    # The cap: bonuses pay at most `max_redeem_percent` of a bill. The bill is today's record of
    # the client when there is one (its cost), else the staff member says it; a salon whose
    # bonuses may pay a whole bill needs no bill, the balance is the cap.

    async def _percent(self, client: Client) -> int:
        company = await self.companies.get(client.company_id)
        return company.max_redeem_percent if company is not None else 0

    async def _record_today(self, s: Session, client: Client) -> Booking | None:
        """The client's record for today (salon-local), not deleted, cancelled or missed."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        today = formats.local(now, s.company).replace(hour=0, minute=0, second=0, microsecond=0)
        return (
            await Booking.filter(
                client_id=client.id,
                deleted=False,
                visit_at__gte=today,
                visit_at__lt=today + timedelta(days=1),
                cost__gt=0,
            )
            .exclude(status__in=[BookingStatus.CANCELLED, BookingStatus.NO_SHOW])
            .order_by("visit_at")
            .first()
        )

    async def _redeem_for(self, s: Session, client: Client, amount: str | None) -> list[Reply]:
        """The client is found: learn the bill (today's record, or ask), then the amount."""
        percent = await self._percent(client)
        if percent <= 0:
            s.go(None)
            return [Reply(s._("The salon does not take bonuses as payment at the moment."))]
        card = self._card(s, client)
        bill: int | None = None
        if percent < 100:
            record = await self._record_today(s, client)
            if record is None:
                s.go("redeem:bill", client_id=client.id, amount=amount)
                ask = s._(
                    "No record for today. What is the bill, in roubles? Bonuses pay up to "
                    "{percent} of it."
                ).format(percent=formats.percent(percent))
                return [Reply(f"{card}\n\n{ask}", buttons=self._cancel_button(s))]
            bill = record.cost
            card += "\n" + self._record_line(s, record, percent, client.balance)
        if amount is not None:
            return await self._ask_confirmation(s, client, amount, bill)
        s.go("redeem:amount", client_id=client.id, bill=bill)
        return [
            Reply(
                f"{card}\n\n" + s._("How many points to redeem?"),
                buttons=self._cancel_button(s),
            )
        ]

    def _record_line(self, s: Session, record: Booking, percent: int, balance: int) -> str:
        when = formats.clock(record.visit_at, s.company) if record.visit_at else ""
        what = ", ".join(
            str(line.get("title"))
            for line in record.services or []
            if isinstance(line, dict) and line.get("title")
        )
        return s._("Today's visit {time} {services}: {cost}. Bonuses may pay up to {cap}.").format(
            time=when,
            services=what or s._("visit"),
            cost=formats.money(record.cost),
            cap=_cap(record.cost, percent, balance),
        )

    async def redeem_bill(self, s: Session, text: str) -> list[Reply] | None:
        staff = await self.staff(s)
        if staff is None:
            s.go(None)
            return None
        client = await Client.get_or_none(id=s.data.get("client_id"), company_id=staff.company_id)
        if client is None:
            s.go(None)
            return self._not_found(s)
        bill = _bill(text)
        if bill is None:
            return [
                Reply(
                    s._("Send the bill in roubles, a whole number, for example 2500."),
                    buttons=self._cancel_button(s),
                )
            ]
        amount = s.data.get("amount")
        if isinstance(amount, str) and amount:
            return await self._ask_confirmation(s, client, amount, bill)
        percent = await self._percent(client)
        s.go("redeem:amount", client_id=client.id, bill=bill)
        text = s._("Bonuses may pay up to {cap} of this bill. How many points to redeem?")
        return [
            Reply(
                text.format(cap=_cap(bill, percent, client.balance)),
                buttons=self._cancel_button(s),
            )
        ]

    async def redeem_amount(self, s: Session, text: str) -> list[Reply] | None:
        staff = await self.staff(s)
        if staff is None:
            s.go(None)
            return None
        client = await Client.get_or_none(id=s.data.get("client_id"), company_id=staff.company_id)
        if client is None:
            s.go(None)
            return self._not_found(s)
        bill = s.data.get("bill")
        return await self._ask_confirmation(
            s, client, text, bill if isinstance(bill, int) else None
        )

    async def _ask_confirmation(
        self, s: Session, client: Client, text: str, bill: int | None = None
    ) -> list[Reply]:
        token = s.turn_token("redeem")
        done = await LedgerEntry.get_or_none(idempotency_key=f"redeem:{token}")
        if done is not None:
            # This very message again (a redelivery), and its redeem was confirmed meanwhile:
            # asking once more would invite a second debit.
            s.go(None)
            already = s._("Already redeemed: {amount} points. Balance: {balance}.")
            return [Reply(already.format(amount=-done.amount, balance=done.balance_after))]
        amount = _amount(text)
        if amount is None or amount <= 0:
            s.go("redeem:amount", client_id=client.id)
            return [Reply(s._("Send a whole number of points, for example 100."))]
        if amount > client.balance:
            s.go("redeem:amount", client_id=client.id, bill=bill)
            text = s._("Not enough points: the balance is {balance}. Send a smaller amount.")
            return [Reply(text.format(balance=client.balance), buttons=self._cancel_button(s))]
        if bill is not None:
            percent = await self._percent(client)
            cap = _cap(bill, percent, client.balance)
            if amount > cap:
                s.go("redeem:amount", client_id=client.id, bill=bill)
                text = s._(
                    "Bonuses pay at most {percent} of a bill: at most {cap} of {bill}. Send a "
                    "smaller amount."
                ).format(percent=formats.percent(percent), cap=cap, bill=formats.money(bill))
                return [Reply(text, buttons=self._cancel_button(s))]
        s.go(
            None,
            redeem={
                "token": token,
                # When it was asked: a confirmation is taken within CONFIRM_WITHIN only.
                "at": self.clock(),
                "company_id": client.company_id,
                "client_id": client.id,
                "amount": amount,
                "name": formats.first_name(client.name),
            },
        )
        text = ngettext(
            s.locale,
            "Redeem {amount} bonus from {name}, {phone}?\nBalance {balance} → {after}.",
            "Redeem {amount} bonuses from {name}, {phone}?\nBalance {balance} → {after}.",
            amount,
        )
        return [
            Reply(
                text.format(
                    amount=amount,
                    name=formats.genitive(formats.first_name(client.name), s.locale),
                    phone=mask_phone(client.phone),
                    balance=client.balance,
                    after=client.balance - amount,
                ),
                buttons=(
                    (
                        Button(s._("✅ Confirm"), action=actions.ConfirmRedeem(token)),
                        Button(s._("✖️ Cancel"), action=actions.CancelRedeem(token)),
                    ),
                ),
            )
        ]

    async def confirm_redeem(self, s: Session, token: str) -> list[Reply]:
        staff = await self.staff(s)
        if staff is None:
            return [Reply(s._("This button is no longer active."), edit=True)]
        key = f"redeem:{token}"
        pending = s.data.get("redeem")
        if not isinstance(pending, dict) or pending.get("token") != token:
            entry = await LedgerEntry.get_or_none(idempotency_key=key, staff_id=staff.id)
            if entry is not None:
                text = s._("Already redeemed: {amount} points. Balance: {balance}.")
                return [
                    Reply(text.format(amount=-entry.amount, balance=entry.balance_after), edit=True)
                ]
            return [Reply(s._("This request is no longer valid. Please start again."), edit=True)]
        if pending.get("company_id") != staff.company_id:
            # Not a request of this staff member's salon (a chat that changed salons).
            s.go(None, redeem=None)
            return [Reply(self._not_found(s)[0].text, edit=True)]
        if not self.clock() - float(pending.get("at") or 0) <= CONFIRM_WITHIN.total_seconds():
            # A late «да» or tap may answer a question nobody is asking any more (the client
            # left, the amount changed); a request kept from before this rule has no time.
            s.go(None, redeem=None)
            text = s._("The two minutes to confirm are over: nothing was redeemed.")
            return [Reply(text, edit=True)]
        # The client was found in this salon when the request was made, server-side; the
        # button carries only the token.
        client_id, amount = int(pending["client_id"]), int(pending["amount"])
        try:
            result = await ledger.redeem(
                client_id,
                amount,
                key,
                staff_id=staff.id,
                reason=f"redeemed by staff {staff.id}",
            )
        except ledger.InsufficientBalance as short:
            s.go(None, redeem=None)
            text = s._("Not enough points: the balance is {balance} now. Nothing was redeemed.")
            return [Reply(text.format(balance=short.balance), edit=True)]
        s.go(None, redeem=None)
        if not result.created:
            text = s._("Already redeemed: {amount} points. Balance: {balance}.")
            return [Reply(text.format(amount=amount, balance=result.balance), edit=True)]
        await self.notify([BalanceNotice.from_result(result)])
        text = s._("Done: {amount} points redeemed for {name}. New balance: {balance}.")
        name = str(pending.get("name") or "—")
        return [Reply(text.format(amount=amount, name=name, balance=result.balance), edit=True)]

    async def cancel_redeem(self, s: Session, token: str) -> list[Reply]:
        pending = s.data.get("redeem")
        if isinstance(pending, dict) and pending.get("token") == token:
            s.go(None, redeem=None)
            return [Reply(s._("Cancelled. Nothing was redeemed."), edit=True)]
        return [Reply(s._("This request is no longer valid. Please start again."), edit=True)]

    # --- lookup ---

    async def lookup(self, s: Session, args: str = "") -> list[Reply] | None:
        staff = await self.staff(s)
        if staff is None:
            return None
        query = args.strip()
        if not query:
            s.go("lookup")
            return [
                Reply(
                    s._("Send the client's code or phone number."),
                    buttons=self._cancel_button(s),
                )
            ]
        s.go(None)
        by_phone = codes.parse(query) is None and normalize_phone(query) is not None
        client, refused, retry = await self._find(s, staff, query, by_phone=by_phone)
        if refused is not None or client is None:
            s.go("lookup" if retry else None)
            return refused
        visits = await Booking.filter(client_id=client.id, status=BookingStatus.COMPLETED).count()
        text = self._card(s, client) + "\n" + s._("Visits: {n}").format(n=visits)
        buttons: tuple[tuple[Button, ...], ...] = ()
        if is_admin(staff):
            buttons = rows(
                Button(s._("✏️ Adjust the balance"), action=actions.AdjustClient(client.id))
            )
        # No redeem button and no code here: a redeem needs the code the client shows.
        return [Reply(text, buttons=buttons)]

    # --- adjust (admins) ---

    async def adjust(self, s: Session, args: str = "") -> list[Reply] | None:
        staff = await self.staff(s)
        if staff is None:
            return None
        if not is_admin(staff):
            s.go(None)
            return [Reply(s._("Only the salon's admins can adjust balances."))]
        code, rest = split_code(args)
        if not code:
            s.go("adjust:code")
            return [
                Reply(
                    s._("Send the client's code or phone number."),
                    buttons=self._cancel_button(s),
                )
            ]
        by_phone = codes.parse(code) is None and normalize_phone(args) is not None
        client, refused, retry = await self._find(
            s, staff, args if by_phone else code, by_phone=by_phone
        )
        if refused is not None or client is None:
            s.go("adjust:code" if retry else None)
            return refused
        if by_phone or not rest:
            return self._ask_delta(s, client)
        delta = _amount(rest[0])
        if delta is None or delta == 0:
            return self._ask_delta(s, client)
        reason = " ".join(rest[1:]).strip()
        if not reason:
            return self._ask_reason(s, client, delta)
        return await self._apply_adjustment(s, staff, client.id, delta, reason)

    async def adjust_client(self, s: Session, client_id: int) -> list[Reply] | None:
        staff = await self.staff(s)
        if staff is None:
            return None
        if not is_admin(staff):
            return [Reply(s._("Only the salon's admins can adjust balances."))]
        client = await Client.get_or_none(id=client_id, company_id=staff.company_id)
        if client is None:
            return self._not_found(s)
        return self._ask_delta(s, client)

    def _ask_delta(self, s: Session, client: Client) -> list[Reply]:
        s.go("adjust:amount", client_id=client.id)
        text = (
            self._card(s, client)
            + "\n\n"
            + s._("How many points to add (+100) or take away (-100)?")
        )
        return [Reply(text, buttons=self._cancel_button(s))]

    def _ask_reason(self, s: Session, client: Client, delta: int) -> list[Reply]:
        s.go("adjust:reason", client_id=client.id, delta=delta)
        return [
            Reply(s._("Why? The reason is kept with the change."), buttons=self._cancel_button(s))
        ]

    async def adjust_step(self, s: Session, text: str) -> list[Reply] | None:
        staff = await self.staff(s)
        if staff is None or not is_admin(staff):
            s.go(None)
            return (
                None
                if staff is None
                else [Reply(s._("Only the salon's admins can adjust balances."))]
            )
        if s.state == "adjust:code":
            return await self.adjust(s, text)
        client = await Client.get_or_none(id=s.data.get("client_id"), company_id=staff.company_id)
        if client is None:
            s.go(None)
            return self._not_found(s)
        if s.state == "adjust:amount":
            delta = _amount(text)
            if delta is None or delta == 0:
                return [Reply(s._("Send a whole number of points, for example +100 or -100."))]
            return self._ask_reason(s, client, delta)
        reason = text.strip()
        if not reason:
            return [Reply(s._("Why? The reason is kept with the change."))]
        return await self._apply_adjustment(s, staff, client.id, int(s.data["delta"]), reason)

    async def _apply_adjustment(
        self, s: Session, staff: Staff, client_id: int, delta: int, reason: str
    ) -> list[Reply]:
        s.go(None)
        # Keyed by the message that completes the adjustment: delivered again, it is a replay.
        key = f"adjust:{s.turn_token('adjust')}"
        try:
            result = await ledger.adjust(
                client_id, delta, key, staff_id=staff.id, reason=reason[:500]
            )
        except ledger.InsufficientBalance as short:
            text = s._("The balance is only {balance}: it cannot go below zero.")
            return [Reply(text.format(balance=short.balance))]
        if result.created:
            await self.notify([BalanceNotice.from_result(result)])
        client = await Client.get(id=client_id)
        text = s._("Balance of {name} changed by {delta} ({reason}). {balance}")
        return [
            Reply(
                text.format(
                    name=formats.first_name(client.name),
                    delta=formats.signed(delta),
                    reason=reason,
                    balance=s._("New balance: {n}.").format(n=result.balance),
                )
            )
        ]
