"""The owner's sections of the onboarding page once the salon is active: the client links, the
poster downloads, the staff with their invites, and the salon's settings.

Everything the owner changes here is a plain HTML form posted to this origin with the page's
token in a hidden field (web.marketplace): no cookie carries any authority, so another site
cannot make the owner's browser post on their behalf (it does not know the token), and
SameSite does not come into it. The forms work without the page's script.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from core.i18n import _
from core.models import Staff, StaffInvite, StaffRole

Translate = Callable[[str], str]

# The order of the salon_settings keys on the page, each with its label and the values it
# takes (the latter also says what to fix under a wrong value).
SETTING_TEXTS: dict[str, tuple[str, str]] = {
    "accrual_percent": (
        _("Bonuses for a visit, percent of its cost"),
        _("a whole number from 0 to 100"),
    ),
    "welcome_bonus": (
        _("Welcome bonus for joining"),
        _("a whole number of bonuses from 0 to 100000; 0 means none"),
    ),
    "max_redeem_percent": (
        _("The most of a bill bonuses may pay, percent"),
        _("a whole number from 0 to 100"),
    ),
    "reminder_day_before_at": (
        _("Reminder the day before the visit, at"),
        _("a time like 18:00, or off"),
    ),
    "reminder_hours_before": (
        _("Reminder shortly before the visit, hours"),
        _("a whole number of hours from 0 to 72; 0 means off"),
    ),
    "quiet_hours": (
        _("Quiet hours: no messages to clients"),
        _("a time range like 21:00-09:00, or off"),
    ),
    "silent_alert_hours_before": (
        _("Tell the admins about a client who has not confirmed, hours before the visit"),
        _("a whole number of hours from 0 to 72; 0 means off"),
    ),
    "review_delay_hours": (
        _("Ask the client how the visit went, hours after it"),
        _("a whole number of hours from 1 to 72, or off"),
    ),
    "review_url": (
        _("Link for reviews (Yandex Maps, 2GIS, …)"),
        _("a link starting with https://, or leave it empty"),
    ),
    "digest_at": (
        _("Weekly summary for the admins"),
        _("a weekday and time like mon 10:00, or off"),
    ),
    "telegram_bot_token": (
        _("The salon's own Telegram bot: its token from @BotFather"),
        _(
            "paste the token from @BotFather, or off to go back to the shared bot; leave it empty "
            "to keep the bot as it is"
        ),
    ),
}
BAD_VALUE = _("«{value}» does not fit here: enter {allowed}.")


@dataclass(frozen=True, slots=True)
class ClientLink:
    """A link clients open to write to the salon; `channel` names its element on the page."""

    channel: str  # telegram | whatsapp | max
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class NewInvite:
    """An invite just created: its link is shown once, here."""

    link: str
    qr_svg: str
    role: StaffRole
    expires_at: datetime


@dataclass(slots=True)
class OwnerView:
    token: str
    tz: ZoneInfo
    links: Sequence[ClientLink] = ()
    # (paper, format) -> URL of the poster, e.g. ("a4", "pdf").
    posters: Mapping[tuple[str, str], str] = field(default_factory=dict)
    staff: Sequence[Staff] = ()
    invites: Sequence[StaffInvite] = ()
    # False while no Telegram bot is configured: staff join through it.
    invites_possible: bool = False
    new_invite: NewInvite | None = None
    # (key, the value shown in the field): the stored one, or what was typed when refused.
    settings: Sequence[tuple[str, str]] = ()
    # key -> the message shown under its field.
    errors: Mapping[str, str] = field(default_factory=dict)
    notice: str | None = None


def sections(view: OwnerView, t: Translate) -> str:
    return "".join((_links(view, t), _posters(view, t), _staff(view, t), _settings_form(view, t)))


def _token_field(view: OwnerView) -> str:
    return f'<input type="hidden" name="token" value="{escape(view.token)}">'


def _links(view: OwnerView, t: Translate) -> str:
    rows = "".join(
        f"<li><strong>{escape(link.label)}</strong><br>"
        f'<a id="{escape(link.channel)}-link" href="{escape(link.url)}" '
        f'rel="noreferrer noopener" target="_blank">{escape(link.url)}</a></li>'
        for link in view.links
    )
    if not rows:
        none = t(_("The client links appear once a chat channel is on."))
        rows = f"<li>{escape(none)}</li>"
    heading = escape(t(_("Links for your clients")))
    hand_out = escape(t(_("Send them to clients or put them on the salon's website:")))
    return (
        f'<div class="card" id="links"><h2>{heading}</h2><p>{hand_out}</p>'
        f'<ul class="links">{rows}</ul></div>'
    )


def _posters(view: OwnerView, t: Translate) -> str:
    preview = view.posters.get(("a5", "png"))
    if preview is None:
        return ""
    heading = escape(t(_("Poster for the reception desk")))
    hint = escape(t(_("Print it and put it where clients wait: the codes lead to the chats.")))
    names = {
        ("a5", "png"): t(_("A5, PNG")),
        ("a5", "pdf"): t(_("A5, PDF")),
        ("a4", "png"): t(_("A4, PNG")),
        ("a4", "pdf"): t(_("A4, PDF")),
    }
    buttons = "".join(
        f'<a class="button" id="poster-{paper}-{fmt}" href="{escape(url)}&amp;download=1" '
        f"download>{escape(names[paper, fmt])}</a>"
        for (paper, fmt), url in view.posters.items()
    )
    return (
        f'<div class="card poster"><h2>{heading}</h2><p>{hint}</p>'
        f'<img id="poster" src="{escape(preview)}" alt="{heading}">'
        f'<p class="downloads">{buttons}</p></div>'
    )


def _when(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%d.%m.%Y %H:%M")


def _role(role: StaffRole, t: Translate) -> str:
    return t(_("admin")) if role is StaffRole.ADMIN else t(_("staff"))


def _staff(view: OwnerView, t: Translate) -> str:
    heading = escape(t(_("Staff")))
    unnamed = t(_("(no name)"))
    if view.staff:
        items = "".join(
            f'<li data-role="{member.role.value}"><strong>'
            f"{escape(member.name or unnamed)}</strong> · "
            f"{escape(_role(member.role, t))}</li>"
            for member in view.staff
        )
        members = f'<ul class="links" id="staff-list">{items}</ul>'
    else:
        nobody = t(_("No staff yet."))
        members = f'<p id="staff-list">{escape(nobody)}</p>'
    parts = [f'<div class="card" id="staff"><h2>{heading}</h2>{members}']
    if view.new_invite is not None:
        parts.append(_new_invite(view.new_invite, view.tz, t))
    revoke = escape(t(_("Revoke")))
    if view.invites:
        heading_invites = t(_("Open invites"))
        parts.append(f'<h3>{escape(heading_invites)}</h3><ul class="links" id="invites">')
        for invite in view.invites:
            until = t(_("{role}, valid until {time}")).format(
                role=_role(invite.role, t), time=_when(invite.expires_at, view.tz)
            )
            parts.append(
                f'<li><form method="post" action="/marketplace/owner/invite/revoke#staff" '
                f'class="inline">{_token_field(view)}'
                f'<input type="hidden" name="invite" value="{invite.id}">'
                f"<span>{escape(until)}</span> "
                f'<button type="submit" class="small">{revoke}</button>'
                "</form></li>"
            )
        parts.append("</ul>")
    if view.invites_possible:
        explain = t(
            _(
                "An invite is a link to the salon's Telegram bot. The first person to open it "
                "joins the salon's staff; it works once and for 24 hours. Your own invite makes "
                "you the salon's admin: admins change the settings and balances in the chat."
            )
        )
        mine, theirs = t(_("Invite for myself (admin)")), t(_("Invite a staff member"))
        parts.append(
            f"<p>{escape(explain)}</p>"
            '<form method="post" action="/marketplace/owner/invite#staff" class="row">'
            f"{_token_field(view)}"
            f'<button type="submit" name="role" value="admin" id="invite-admin">'
            f"{escape(mine)}</button>"
            f'<button type="submit" name="role" value="staff" id="invite-staff">'
            f"{escape(theirs)}</button></form>"
        )
    else:
        text = t(
            _(
                "Staff join through the salon's Telegram bot, and Telegram is not set up on "
                "this service yet: please write to the service's support."
            )
        )
        parts.append(f"<p>{escape(text)}</p>")
    parts.append("</div>")
    return "".join(parts)


def _new_invite(invite: NewInvite, tz: ZoneInfo, t: Translate) -> str:
    who = (
        t(_("Your invite: open it on your phone to become the salon's admin."))
        if invite.role is StaffRole.ADMIN
        else t(_("An invite for a staff member: send it to them or let them scan the code."))
    )
    until = t(_("It works once, until {time}.")).format(time=_when(invite.expires_at, tz))
    return (
        f'<div class="new-invite" id="new-invite"><p><strong>{escape(who)}</strong></p>'
        f'<p><a id="invite-link" href="{escape(invite.link)}" rel="noreferrer noopener" '
        f'target="_blank">{escape(invite.link)}</a></p>'
        f'<div class="qr" id="invite-qr">{invite.qr_svg}</div>'
        f"<p>{escape(until)}</p></div>"
    )


def _settings_form(view: OwnerView, t: Translate) -> str:
    heading = escape(t(_("The salon's settings")))
    rows = []
    for key, value in view.settings:
        label, allowed = SETTING_TEXTS.get(key, (key, ""))
        error = view.errors.get(key)
        described = f"{key}-hint"
        invalid = ' aria-invalid="true"' if error else ""
        # The bot's token is a secret: never written into the page, only its fingerprint.
        shown = (
            f'type="password" autocomplete="off" value="" placeholder="{escape(value)}"'
            if key == "telegram_bot_token"
            else f'value="{escape(value)}"'
        )
        rows.append(
            f'<div class="field{" bad" if error else ""}">'
            f'<label for="setting-{key}">{escape(t(label))}</label>'
            f'<input id="setting-{key}" name="{key}" {shown} '
            f'aria-describedby="{described}"{invalid}>'
            + (
                f'<p class="error" id="{key}-error" role="alert">{escape(error)}</p>'
                if error
                else ""
            )
            + f'<p class="hint" id="{described}">{escape(t(allowed))}</p></div>'
        )
    notice = (
        f'<p class="ok" id="settings-notice" role="status">{escape(view.notice)}</p>'
        if view.notice
        else ""
    )
    save = escape(t(_("Save")))
    return (
        f'<div class="card" id="settings"><h2>{heading}</h2>{notice}'
        '<form method="post" action="/marketplace/owner/settings#settings" id="settings-form">'
        f"{_token_field(view)}{''.join(rows)}"
        f'<p><button type="submit" id="settings-save">{save}</button></p></form></div>'
    )
