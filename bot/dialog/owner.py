"""What a salon's admins run in chat, on every channel: the salon's settings, its team (invites,
roles, removal) and its figures (`/stats`; the weekly digest is the same figures, bot.digest).

Every step reads the person's staff row again and acts only for an active admin
(StaffRole.ADMIN): a demotion or a removal counts at the next tap. A setting is changed in three
steps — pick it, send the value (checked by core.salon_settings.parse; a wrong one is answered
with the allowed values), confirm — and stored by core.salon_settings.change with the admin in
the salon's audit log (`staff:<id>`). The pending change stays in the chat's data under a token
(Session.turn_token) that the Confirm button carries, as a redeem's does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.dialog import actions, formats
from bot.dialog.base import Flows, is_admin
from bot.dialog.replies import Button, Image, Reply, rows
from bot.dialog.session import Session
from bot.qr import qr_png
from core import salon_settings, stats
from core import staff as staff_service
from core.i18n import _, gettext, ngettext
from core.models import Company, Staff, StaffRole

# How long a setting's change waits for its confirmation.
CONFIRM_WITHIN = timedelta(minutes=10)
# The settings an admin changes in chat, in the order shown, with their label and the allowed
# values as the admin reads them.
SETTINGS: dict[str, tuple[str, str]] = {
    "accrual_percent": (
        _("Bonuses for a visit, per cent of the bill"),
        _("a whole number from 0 to 100, for example 5"),
    ),
    "welcome_bonus": (
        _("Welcome bonus"),
        _("a whole number of bonuses from 0 (none) to 100000"),
    ),
    "max_redeem_percent": (
        _("Bonuses may pay, per cent of a bill"),
        _("a whole number from 0 (bonuses are not taken) to 100 (the whole bill)"),
    ),
    "reminder_day_before_at": (
        _("Reminder the day before, at"),
        _("a time like 18:00, or «off»"),
    ),
    "reminder_hours_before": (
        _("Reminder before the visit, hours"),
        _("a whole number of hours from 1 to 72, or 0 or «off»"),
    ),
    "quiet_hours": (
        _("Quiet hours (no messages)"),
        _("a time range like 21:00-09:00, or «off»"),
    ),
    "silent_alert_hours_before": (
        _("Alert about an unconfirmed visit, hours before"),
        _("a whole number of hours from 1 to 72, or 0 or «off»"),
    ),
    "review_delay_hours": (
        _("After-visit question, hours after"),
        _("a whole number of hours from 1 to 72, or «off»"),
    ),
    "review_url": (
        _("Review link"),
        _("a link starting with https://, or «off»"),
    ),
    "digest_at": (
        _("Weekly figures for admins"),
        _("a weekday and a time like «mon 10:00» (or «пн 10:00»), or «off»"),
    ),
}
# How a person says "off", and weekdays in Russian, read before core.salon_settings.parse.
_ZERO_IS_OFF = frozenset({"accrual_percent", "welcome_bonus", "max_redeem_percent"})
_OFF_WORDS = frozenset({"off", "выкл", "выключить", "отключить", "нет", "no", "none"})
_WEEKDAYS_RU = {
    "пн": "mon",
    "вт": "tue",
    "ср": "wed",
    "чт": "thu",
    "пт": "fri",
    "сб": "sat",
    "вс": "sun",
    "понедельник": "mon",
    "вторник": "tue",
    "среда": "wed",
    "четверг": "thu",
    "пятница": "fri",
    "суббота": "sat",
    "воскресенье": "sun",
}
_WEEKDAY_NAMES = {
    "mon": _("Monday"),
    "tue": _("Tuesday"),
    "wed": _("Wednesday"),
    "thu": _("Thursday"),
    "fri": _("Friday"),
    "sat": _("Saturday"),
    "sun": _("Sunday"),
}
_CHANNELS = {"telegram": "Telegram", "whatsapp": "WhatsApp", "max": "MAX", "web": _("web chat")}


def _typed(key: str, text: str) -> str:
    """What the admin typed, in the words core.salon_settings reads."""
    text = text.strip()
    if text.casefold() in _OFF_WORDS:
        # Where 0 is "none" (and WhatsApp's `0` is taken: it ends a flow), "off" is 0.
        return "0" if key in _ZERO_IS_OFF else "off"
    if key == "digest_at":
        day, sep, at = text.partition(" ")
        return f"{_WEEKDAYS_RU.get(day.casefold().rstrip('.'), day)}{sep}{at}"
    if key == "quiet_hours":
        return text.replace("–", "-").replace("—", "-")
    return text


def shown(key: str, value: str, locale: str) -> str:
    """A stored value (as salon_settings.show gives it) in plain words."""
    off = gettext(locale, "off")
    if value in ("", "off") or (
        value == "0" and (key.endswith("_before") or key == "welcome_bonus")
    ):
        return gettext(locale, "none") if key in ("welcome_bonus", "review_url") else off
    if key in ("accrual_percent", "max_redeem_percent"):
        return formats.percent(int(value))
    if key == "welcome_bonus":
        n = int(value)
        return ngettext(locale, "{n} bonus", "{n} bonuses", n).format(n=n)
    if key.endswith("_hours_before") or key == "review_delay_hours":
        return gettext(locale, "{n} h").format(n=value)
    if key == "quiet_hours":
        return value.replace("-", "–")
    if key == "digest_at":
        day, _sep, at = value.partition(" ")
        return f"{gettext(locale, _WEEKDAY_NAMES.get(day, day))} {at}"
    return value


class OwnerFlows(Flows):
    async def admin(self, s: Session) -> tuple[Staff | None, list[Reply] | None]:
        """(the admin, None), or (None, the refusal): None for someone who is not staff (the
        caller answers as to unknown text), a refusal for staff who are not admins."""
        staff = await self.staff(s)
        if staff is None:
            return None, None
        if not is_admin(staff):
            s.go(None)
            return None, [Reply(s._("Only the salon's admins can do this."))]
        return staff, None

    async def owner_action(self, s: Session, action: actions.Action) -> list[Reply] | None:
        """A pressed admin button; None for someone who is not staff."""
        match action:
            case actions.Settings():
                return await self.settings(s)
            case actions.EditSetting(key=key):
                return await self.edit_setting(s, key)
            case actions.ConfirmSetting(token=token):
                return await self.confirm_setting(s, token)
            case actions.CancelSetting(token=token):
                return await self.cancel_setting(s, token)
            case actions.Team():
                return await self.team(s)
            case actions.NewInvite(role=role):
                return await self.new_invite(s, role)
            case actions.RevokeInvite(invite_id=invite_id):
                return await self.revoke_invite(s, invite_id)
            case actions.Member(staff_id=staff_id):
                return await self.member(s, staff_id)
            case actions.SetRole(staff_id=staff_id, role=role):
                return await self.set_role(s, staff_id, role)
            case actions.RemoveMember(staff_id=staff_id, sure=sure):
                return await self.remove_member(s, staff_id, bool(sure))
            case actions.Stats():
                return await self.stats(s)
        return None

    # --- settings ---

    async def settings(self, s: Session, args: str = "") -> list[Reply] | None:
        staff, refused = await self.admin(s)
        if staff is None:
            return refused
        company = await Company.get(id=staff.company_id)
        s.go(None)
        values = dict(salon_settings.show(company))
        lines = [s._("The salon's settings:")]
        buttons = []
        for key, (label, _allowed) in SETTINGS.items():
            lines.append(f"• {s._(label)}: {shown(key, values[key], s.locale)}")
            buttons.append(Button(s._(label), action=actions.EditSetting(key)))
        lines += ["", s._("Choose what to change.")]
        return [Reply("\n".join(lines), buttons=rows(*buttons))]

    async def edit_setting(self, s: Session, key: str) -> list[Reply] | None:
        staff, refused = await self.admin(s)
        if staff is None:
            return refused
        if key not in SETTINGS:
            return [Reply(s._("This button is no longer active."))]
        company = await Company.get(id=staff.company_id)
        label, allowed = SETTINGS[key]
        current = shown(key, dict(salon_settings.show(company))[key], s.locale)
        s.go(f"setting:{key}")
        text = s._("{setting}: now {value}.\nSend the new value: {allowed}.").format(
            setting=s._(label), value=current, allowed=s._(allowed)
        )
        return [Reply(text, buttons=self._stop(s))]

    async def setting_value(self, s: Session, text: str) -> list[Reply] | None:
        """The value typed for the setting being changed: checked, then asked to confirm."""
        staff, refused = await self.admin(s)
        key = (s.state or "").removeprefix("setting:")
        if staff is None or key not in SETTINGS:
            s.go(None)
            return refused
        label, allowed = SETTINGS[key]
        typed = _typed(key, text)
        try:
            value = salon_settings.parse(key, typed)
        except salon_settings.SettingError:
            wrong = s._("«{value}» does not fit «{setting}». Send {allowed}.")
            return [
                Reply(
                    wrong.format(value=text.strip()[:60], setting=s._(label), allowed=s._(allowed)),
                    buttons=self._stop(s),
                )
            ]
        company = await Company.get(id=staff.company_id)
        old = dict(salon_settings.show(company))[key]
        new = salon_settings.KEYS[key].show(value)
        if old == new:
            s.go(None)
            text = s._("«{setting}» is {value} already: nothing to change.")
            return [Reply(text.format(setting=s._(label), value=shown(key, new, s.locale)))]
        token = s.turn_token("setting")
        s.go(None, setting={"token": token, "key": key, "text": typed, "at": self.clock()})
        question = s._("Change «{setting}»: {old} → {new}?").format(
            setting=s._(label), old=shown(key, old, s.locale), new=shown(key, new, s.locale)
        )
        return [
            Reply(
                question,
                buttons=(
                    (
                        Button(s._("✅ Confirm"), action=actions.ConfirmSetting(token)),
                        Button(s._("✖️ Cancel"), action=actions.CancelSetting(token)),
                    ),
                ),
            )
        ]

    async def confirm_setting(self, s: Session, token: str) -> list[Reply]:
        staff, refused = await self.admin(s)
        pending = s.data.get("setting")
        if staff is None:
            return refused or [Reply(s._("This button is no longer active."), edit=True)]
        if not isinstance(pending, dict) or pending.get("token") != token:
            return [Reply(s._("This request is no longer valid. Please start again."), edit=True)]
        s.go(None)
        if not self.clock() - float(pending.get("at") or 0) <= CONFIRM_WITHIN.total_seconds():
            # A tap long after the question may confirm what nobody means any more.
            text = s._("Too late to confirm: nothing was changed. Please start again.")
            return [Reply(text, edit=True)]
        key = str(pending["key"])
        company = await Company.get(id=staff.company_id)
        try:
            changes = await salon_settings.change(
                company, {key: str(pending["text"])}, actor=f"staff:{staff.id}"
            )
        except salon_settings.SettingError:
            return [Reply(s._("This request is no longer valid. Please start again."), edit=True)]
        if s.company is not None and s.company.id == company.id:
            # The chat's copy of the salon (a cached one) sees the change at once.
            for change in changes:
                setattr(s.company, change.key, getattr(company, change.key))
        label = s._(SETTINGS[key][0])
        value = shown(key, dict(salon_settings.show(company))[key], s.locale)
        text = s._("Saved: «{setting}» is {value} now.").format(setting=label, value=value)
        return [Reply(text, edit=True, buttons=rows(self._back_to_settings(s)))]

    async def cancel_setting(self, s: Session, token: str) -> list[Reply]:
        pending = s.data.get("setting")
        if isinstance(pending, dict) and pending.get("token") == token:
            s.go(None)
            return [Reply(s._("Cancelled: nothing was changed."), edit=True)]
        return [Reply(s._("This request is no longer valid. Please start again."), edit=True)]

    def _back_to_settings(self, s: Session) -> Button:
        return Button(s._("⚙️ Settings"), action=actions.Settings())

    def _stop(self, s: Session) -> tuple[tuple[Button, ...], ...]:
        return rows(Button(s._("✖️ Cancel"), action=actions.Stop()))

    # --- the team ---

    async def team(self, s: Session, args: str = "") -> list[Reply] | None:
        staff, refused = await self.admin(s)
        if staff is None:
            return refused
        s.go(None)
        members = await staff_service.team(staff.company_id)
        invites = await staff_service.open_invites(staff.company_id)
        lines = [s._("The salon's staff:")]
        buttons = []
        for member in members:
            line = self._member_line(s, member, you=member.id == staff.id)
            lines.append(f"• {line}")
            if member.id != staff.id:
                buttons.append(Button(line[:60], action=actions.Member(member.id)))
        for invite in invites:
            until = formats.day_time(invite.expires_at, s.company)
            text = s._("Invite ({role}) until {time}").format(
                role=self._role(s, invite.role), time=until
            )
            lines.append(f"• {text}")
            buttons.append(
                Button(
                    s._("✖️ Revoke: {invite}").format(invite=text)[:60],
                    action=actions.RevokeInvite(invite.id),
                )
            )
        buttons += [
            Button(s._("➕ Invite staff"), action=actions.NewInvite(StaffRole.STAFF.value)),
            Button(s._("➕ Invite an admin"), action=actions.NewInvite(StaffRole.ADMIN.value)),
        ]
        return [Reply("\n".join(lines), buttons=rows(*buttons))]

    def _role(self, s: Session, role: StaffRole) -> str:
        return s._("admin") if role is StaffRole.ADMIN else s._("staff member")

    def _member_line(self, s: Session, member: Staff, *, you: bool = False) -> str:
        name = member.name or s._("no name")
        line = f"{name} — {self._role(s, member.role)}"
        return line + " " + s._("(you)") if you else line

    async def new_invite(self, s: Session, role: str) -> list[Reply] | None:
        staff, refused = await self.admin(s)
        if staff is None:
            return refused
        username = await self.bot_username() if self.bot_username is not None else None
        if username is None:
            text = s._(
                "Invites open the salon's Telegram bot, and it is not set up yet. Ask the "
                "service's operator to connect it."
            )
            return [Reply(text)]
        chosen = StaffRole.ADMIN if role == StaffRole.ADMIN.value else StaffRole.STAFF
        company = await Company.get(id=staff.company_id)
        token, invite = await staff_service.create_invite(company, chosen)
        link = staff_service.invite_link(username, token)
        text = s._(
            "An invite for a new {role}: {link}\n\nIt works once, until {time}. Send the link "
            "or show this QR code to the person: they open it in Telegram and join the salon's "
            "staff there. To take it back, revoke it in the staff list."
        ).format(
            role=self._role(s, chosen),
            link=link,
            time=formats.day_time(invite.expires_at, s.company),
        )
        return [
            Reply(text),
            Reply(s._("QR code of the invite"), image=Image(qr_png(link), "staff-invite.png")),
        ]

    async def revoke_invite(self, s: Session, invite_id: int) -> list[Reply] | None:
        staff, refused = await self.admin(s)
        if staff is None:
            return refused
        if await staff_service.revoke_invite(staff.company_id, invite_id):
            text = s._("The invite is revoked: the link no longer works.")
        else:
            text = s._("This invite was used or revoked already.")
        return [Reply(text, edit=True, buttons=rows(self._back_to_team(s)))]

    def _back_to_team(self, s: Session) -> Button:
        return Button(s._("👥 Staff"), action=actions.Team())

    async def _other_member(
        self, s: Session, staff_id: int
    ) -> tuple[Staff | None, Staff | None, list[Reply] | None]:
        """(the admin, the member they act on, or the refusal)."""
        staff, refused = await self.admin(s)
        if staff is None:
            return None, None, refused
        if staff_id == staff.id:
            text = s._("You cannot change your own role or remove yourself: ask another admin.")
            return None, None, [Reply(text)]
        member = await Staff.get_or_none(id=staff_id, company_id=staff.company_id, active=True)
        if member is None:
            return None, None, [Reply(s._("This person is no longer on the staff."), edit=True)]
        return staff, member, None

    async def member(self, s: Session, staff_id: int) -> list[Reply] | None:
        _admin, member, refused = await self._other_member(s, staff_id)
        if member is None:
            return refused
        other = StaffRole.STAFF if member.role is StaffRole.ADMIN else StaffRole.ADMIN
        make = s._("Make a staff member") if other is StaffRole.STAFF else s._("Make an admin")
        buttons = rows(
            Button(make, action=actions.SetRole(member.id, other.value)),
            Button(s._("Remove from staff"), action=actions.RemoveMember(member.id)),
            self._back_to_team(s),
        )
        return [Reply(self._member_line(s, member), buttons=buttons)]

    async def set_role(self, s: Session, staff_id: int, role: str) -> list[Reply] | None:
        staff, member, refused = await self._other_member(s, staff_id)
        if staff is None or member is None:
            return refused
        chosen = StaffRole.ADMIN if role == StaffRole.ADMIN.value else StaffRole.STAFF
        changed = await staff_service.set_role(staff.company_id, member.id, chosen)
        if changed is None:
            return [Reply(s._("This person is no longer on the staff."), edit=True)]
        text = s._("Done: {line}.").format(line=self._member_line(s, changed))
        return [Reply(text, edit=True, buttons=rows(self._back_to_team(s)))]

    async def remove_member(self, s: Session, staff_id: int, sure: bool) -> list[Reply] | None:
        staff, member, refused = await self._other_member(s, staff_id)
        if staff is None or member is None:
            return refused
        name = member.name or s._("no name")
        if not sure:
            question = s._("Remove {name} from the salon's staff?").format(name=name)
            buttons = (
                (
                    Button(s._("Remove"), action=actions.RemoveMember(member.id, 1)),
                    Button(s._("✖️ Cancel"), action=actions.Team()),
                ),
            )
            return [Reply(question, buttons=buttons)]
        await staff_service.deactivate(staff.company_id, member.id)
        text = s._("{name} is no longer on the staff.").format(name=name)
        return [Reply(text, edit=True, buttons=rows(self._back_to_team(s)))]

    # --- figures ---

    async def stats(self, s: Session, args: str = "") -> list[Reply] | None:
        staff, refused = await self.admin(s)
        if staff is None:
            return refused
        s.go(None)
        company = await Company.get(id=staff.company_id)
        now = datetime.fromtimestamp(self.clock(), UTC)
        figures = await stats.figures(company, now)
        return stats_replies(company, figures, s.locale)


def stats_replies(company: Company, figures: stats.Figures, locale: str) -> list[Reply]:
    """The figures in words, then the chart: what `/stats` answers and the weekly digest sends."""
    period = f"{formats.day(figures.since, company)}–{formats.day(figures.until, company)}"
    title = company.title or gettext(locale, "the salon")
    lines = [gettext(locale, "📊 {salon}, {period}").format(salon=title, period=period), ""]
    joined = ngettext(locale, "New clients: {n}", "New clients: {n}", figures.joined_total).format(
        n=figures.joined_total
    )
    if figures.joined:
        channels = ", ".join(
            f"{_channel_name(channel, locale)} {count}"
            for channel, count in sorted(
                figures.joined.items(), key=lambda item: (item[0] is None, -item[1], item[0])
            )
        )
        joined += f" ({channels})"
    lines.append(joined)
    lines.append(
        ngettext(locale, "Visits completed: {n}", "Visits completed: {n}", figures.visits).format(
            n=figures.visits
        )
    )
    lines.append(
        gettext(
            locale, "Bonuses: awarded {awarded}, redeemed {redeemed}; clients hold {outstanding}"
        ).format(
            awarded=figures.awarded, redeemed=figures.redeemed, outstanding=figures.outstanding
        )
    )
    lines.append(
        gettext(
            locale, "Reminders: sent {sent}, confirmed {confirmed}, cancellations caught {caught}"
        ).format(
            sent=figures.reminders_sent,
            confirmed=figures.reminders_confirmed,
            caught=figures.cancellations_caught,
        )
    )
    lines += _ratings(company, figures, locale)
    chart = stats.chart_png(figures.weeks, locale, salon_settings.loop(company).tz)
    caption = gettext(locale, "Visits and bonuses awarded, the last 8 weeks")
    return [Reply("\n".join(lines)), Reply(caption, image=Image(chart, "stats.png"))]


def _channel_name(channel: str | None, locale: str) -> str:
    if channel is None:
        return gettext(locale, "no chat yet")
    return gettext(locale, _CHANNELS[channel]) if channel in _CHANNELS else channel


def _ratings(company: Company, figures: stats.Figures, locale: str) -> list[str]:
    if figures.rating_average is None:
        return [gettext(locale, "Ratings after visits: none yet")]
    average = f"{figures.rating_average:.1f}"
    if locale == "ru":
        average = average.replace(".", ",")
    lines = [
        ngettext(
            locale,
            "Ratings after visits: {average} of 5 ({n} rating)",
            "Ratings after visits: {average} of 5 ({n} ratings)",
            figures.rating_count,
        ).format(average=average, n=figures.rating_count)
    ]
    for low in figures.low_ratings:
        who = formats.first_name(low.client_name) if low.client_name else "—"
        comment = f": «{low.comment[:200]}»" if low.comment else ""
        lines.append(f"  ★{low.rating} — {who}, {formats.day(low.at, company)}{comment}")
    return lines
