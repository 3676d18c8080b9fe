"""The owner's onboarding page and the plain message pages around it, as HTML strings.

The stylesheets and the script are files of web/static/ on this same origin (web.assets), so
the pages' CSP allows only 'self' and nothing inline; the QR is an inline SVG; no external
scripts, fonts or images (the page works offline behind a proxy). Texts come from the gettext
catalog; the few the script needs travel in a JSON data block (never executed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

from core.i18n import _, gettext
from core.models import IntegrationStatus
from core.settings import support_contact_kind
from web import assets

Translate = Callable[[str], str]

_SCRIPT_TEXTS = {
    "expired": _("This link has expired — open the app again from YClients."),
    "waiting": _("Waiting for the scan. The code refreshes by itself."),
    "code_expired": _("The code has expired. Ask for a new one."),
    "preparing": _("Preparing the code…"),
    "gateway_down": _("The WhatsApp gateway is not answering; trying again…"),
    "retrying": _("Connection problem; trying again…"),
    "activating": _("Activating…"),
    "activation_failed": _("Activation failed. YClients says: {message}"),
    "activation_failed_plain": _("Activation failed. Try again in a minute."),
    "activate_not_ready": _("Link WhatsApp first."),
    "activate_busy": _("Activation is already under way; wait a moment."),
    "try_again": _("Try again"),
    "pair_phone": _("Check the phone number: it must be the salon's WhatsApp number."),
    "pair_not_waiting": _("The session is not waiting for a link right now; ask for a new code."),
    "pair_failed": _("Could not get a code; try again."),
}


@dataclass(slots=True)
class PageContext:
    title: str
    yclients_id: int
    status: IntegrationStatus
    connected: bool
    phone: str | None
    token: str
    poll_ms: int
    gateway_configured: bool
    telegram_link: str | None = None
    whatsapp_link: str | None = None
    max_link: str | None = None
    poster_url: str | None = None
    staff_invite_link: str | None = None
    callback_error: str | None = None
    # (title, onboarding URL) of the other branches registered in the same redirect.
    branches: Sequence[tuple[str, str]] = field(default_factory=list)
    # SUPPORT_CONTACT: whom the owner writes to about what only the operator can fix.
    support_contact: str | None = None


_SUPPORT = _("The service's support: {contact}")
_SUPPORT_UNSET = _(
    "The service's support: write to the app's developer, their contacts are on the app's "
    "page in the YClients Marketplace."
)


def support_line(t: Translate, contact: str | None) -> str:
    """Whom to write to, as a paragraph: SUPPORT_CONTACT as a mailto:, tel: or web link."""
    if not contact:
        return f'<p class="sub" id="support">{escape(t(_SUPPORT_UNSET))}</p>'
    kind = support_contact_kind(contact)
    if kind == "email":
        href = f"mailto:{contact}"
    elif kind == "phone":
        href = "tel:" + ("+" if contact.startswith("+") else "") + re.sub(r"\D", "", contact)
    elif kind == "url":
        href = contact
    else:
        href = ""
    shown = escape(contact)
    if href:
        shown = f'<a href="{escape(href)}" rel="noreferrer noopener" target="_blank">{shown}</a>'
    text = escape(t(_SUPPORT)).replace("{contact}", shown)
    return f'<p class="sub" id="support">{text}</p>'


def qr_svg(svg: str) -> str:
    """qrcode's SVG, sized by CSS instead of its fixed millimetres."""
    return re.sub(r'\swidth="[^"]*"\s+height="[^"]*"', ' role="img" aria-label="QR"', svg, count=1)


def _document(
    locale: str, title: str, body: str, *, styles: Sequence[str] = (), script: str = ""
) -> str:
    links = "".join(
        f'<link rel="stylesheet" href="{escape(assets.url(name))}">'
        for name in ("page.css", *styles)
    )
    script_tag = f'<script src="{escape(assets.url(script))}" defer></script>' if script else ""
    return (
        "<!doctype html>\n"
        f'<html lang="{escape(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="robots" content="noindex">'
        # No favicon request: the page loads nothing it does not carry.
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title>"
        f"{links}{script_tag}</head>"
        f"<body><main>{body}</main></body></html>"
    )


def message_page(locale: str, title: str, text: str, *, contact: str | None = None) -> str:
    """A page that says one thing: an expired link, a refused request, an outage; and whom
    to write to when it is not the owner's to solve."""
    support = support_line(lambda message: gettext(locale, message), contact)
    body = f'<h1>{escape(title)}</h1><div class="card"><p>{escape(text)}</p></div>{support}'
    return _document(locale, title, body)


def onboarding_page(ctx: PageContext, locale: str) -> str:
    def t(message: str) -> str:
        return gettext(locale, message)

    title = t(_("Connect {salon} to Salonbot")).format(salon=ctx.title or ctx.yclients_id)
    subtitle = t(_("YClients salon {id}")).format(id=ctx.yclients_id)
    parts = [
        f"<h1>{escape(ctx.title or str(ctx.yclients_id))}</h1>",
        f'<p class="sub">{escape(subtitle)}</p>',
        '<p id="notice" class="card error" role="alert" hidden></p>',
    ]
    status = ctx.status
    if status is IntegrationStatus.UNINSTALLED:
        parts.append(
            _card(
                t(
                    _(
                        "The app was removed from this salon in YClients. To use it again, "
                        "install it from the YClients Marketplace."
                    )
                )
            )
        )
    elif status is IntegrationStatus.FROZEN:
        parts.append(
            _card(
                t(
                    _(
                        "The subscription to the app has lapsed in YClients. Renew it in the "
                        "YClients Marketplace: the bot resumes by itself once YClients reports "
                        "it active, and the links below work again."
                    )
                )
            )
        )
    if status in (IntegrationStatus.UNINSTALLED, IntegrationStatus.FROZEN):
        parts.append(support_line(t, ctx.support_contact))
    else:
        parts.append(_steps(ctx, t))
        if status is IntegrationStatus.PENDING_WHATSAPP:
            parts.append(_auto_answers(t))
        if status is IntegrationStatus.ACTIVE:
            parts.append(_links(ctx, t))
        if not ctx.connected:
            parts.append(_whatsapp_panel(ctx, t))
        elif status is IntegrationStatus.PENDING_WHATSAPP:
            parts.append(_activation_panel(ctx, t))
        else:
            parts.append(
                _card(
                    t(_("WhatsApp linked: {phone}")).format(phone=ctx.phone or "—"),
                    css="ok",
                )
            )
    if ctx.branches:
        items = "".join(
            f'<li><a href="{escape(url)}">{escape(name)}</a></li>' for name, url in ctx.branches
        )
        heading = escape(t(_("Other branches of this installation")))
        parts.append(f'<div class="card"><h2>{heading}</h2><ul class="links">{items}</ul></div>')
    config = {
        "token": ctx.token,
        "poll_ms": ctx.poll_ms,
        "integration_status": status.value,
        "connected": ctx.connected,
        "t": {key: t(message) for key, message in _SCRIPT_TEXTS.items()},
    }
    # `<` escaped, so nothing in the JSON can close the script element.
    blob = json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")
    parts.append(f'<script id="cfg" type="application/json">{blob}</script>')
    return _document(
        locale, title, "".join(parts), styles=["onboarding.css"], script="onboarding.js"
    )


def _card(text: str, css: str = "") -> str:
    klass = f"card {css}".strip()
    return f'<div class="{klass}"><p>{escape(text)}</p></div>'


def _steps(ctx: PageContext, t: Translate) -> str:
    active = ctx.status is IntegrationStatus.ACTIVE
    states = [
        "done" if ctx.connected or active else "now",
        "done" if active else ("now" if ctx.connected else ""),
        "now" if active else "",
    ]
    labels = [
        t(_("Link the salon's WhatsApp")),
        t(_("Activate the integration")),
        t(_("Hand out the links to clients")),
    ]
    items = "".join(
        f'<li class="{state}">{escape(label)}</li>'
        for state, label in zip(states, labels, strict=True)
    )
    return f'<div class="card"><ol class="steps">{items}</ol></div>'


def _auto_answers(t: Translate) -> str:
    """Before activation: what the salon's number will do, and where questions go."""
    text = t(
        _(
            "Once activated, the bot answers clients who write to the linked WhatsApp number "
            "by itself: bonuses, their code, visits, booking. Questions it cannot answer, "
            "photos and voice messages go to the salon's administrators in their chat with "
            "the bot, and an administrator's reply reaches the client."
        )
    )
    return f'<div class="card" id="auto-answers"><p>{escape(text)}</p></div>'


def _whatsapp_panel(ctx: PageContext, t: Translate) -> str:
    if not ctx.gateway_configured:
        # Not a passing outage: no gateway is configured, so only the operator can help.
        text = t(
            _(
                "WhatsApp is not set up on this service, so the salon's number cannot be "
                "linked here. There is nothing to change on your side: please write to the "
                "service's support."
            )
        )
        return (
            f'<div class="card error" id="whatsapp-off"><p>{escape(text)}</p>'
            f"{support_line(t, ctx.support_contact)}</div>"
        )
    heading = (
        t(_("The salon's WhatsApp is disconnected. Link it again to keep the bot answering."))
        if ctx.status is IntegrationStatus.ACTIVE
        else t(_("Link the salon's WhatsApp"))
    )
    qr_help = t(
        _(
            "On the phone with the salon's WhatsApp open WhatsApp → Settings → Linked devices "
            "→ Link a device, and point the camera at this code."
        )
    )
    pair_help = t(
        _(
            "Enter the salon's WhatsApp number. Then on that phone open WhatsApp → Settings → "
            "Linked devices → Link a device → Link with phone number instead, and type the "
            "code shown here."
        )
    )
    tab_qr, tab_code = escape(t(_("QR code"))), escape(t(_("Code by phone number")))
    preparing, new_code = escape(t(_SCRIPT_TEXTS["preparing"])), escape(t(_("New code")))
    phone_label, get_code = escape(t(_("Phone number"))), escape(t(_("Get the code")))
    your_code = escape(t(_("Your code:")))
    return (
        f'<div class="card live" id="whatsapp"><h2>{escape(heading)}</h2>'
        '<div class="tabs" role="tablist">'
        f'<button type="button" role="tab" data-tab="tab-qr" aria-selected="true">{tab_qr}'
        "</button>"
        f'<button type="button" role="tab" data-tab="tab-code" aria-selected="false">'
        f"{tab_code}</button></div>"
        f'<section id="tab-qr"><p>{escape(qr_help)}</p>'
        '<div id="qr" class="qr" data-qr-id="" hidden></div>'
        f'<p id="qr-status" class="status" aria-live="polite">{preparing}</p>'
        f'<p class="status"><button type="button" id="new-code" hidden>{new_code}</button></p>'
        "</section>"
        f'<section id="tab-code" hidden><p>{escape(pair_help)}</p>'
        '<form id="pair-form">'
        f'<label for="pair-phone">{phone_label}</label>'
        '<input id="pair-phone" name="phone" type="tel" inputmode="tel" '
        'autocomplete="tel" placeholder="+7 900 000-00-00" required>'
        f'<button type="submit" id="pair-button">{get_code}</button>'
        "</form>"
        '<p id="pair-error" class="error" hidden></p>'
        f'<div id="pair-result" hidden><p>{your_code}</p>'
        '<p id="pair-code" class="code"></p></div></section></div>'
    )


def _activation_panel(ctx: PageContext, t: Translate) -> str:
    error = ""
    if ctx.callback_error:
        text = t(_SCRIPT_TEXTS["activation_failed"]).format(message=ctx.callback_error)
        error = escape(text)
    linked = t(_("WhatsApp linked: {phone}")).format(phone=ctx.phone or "—")
    explain = t(
        _(
            "Activation tells YClients that the set-up is done and switches the bot on for "
            "your clients."
        )
    )
    label = t(_SCRIPT_TEXTS["try_again"]) if ctx.callback_error else t(_("Activate"))
    return (
        f'<div class="card live" id="activation"><p class="ok" id="linked">{escape(linked)}</p>'
        f"<p>{escape(explain)}</p>"
        f'<p><button type="button" id="activate">{escape(label)}</button></p>'
        '<p id="activate-status" class="status" aria-live="polite"></p>'
        f'<p id="activate-error" class="error" role="alert"{"" if error else " hidden"}>'
        f"{error}</p></div>"
    )


def _links(ctx: PageContext, t: Translate) -> str:
    items = []
    if ctx.telegram_link:
        items.append((t(_("Telegram bot")), ctx.telegram_link, "telegram-link"))
    if ctx.whatsapp_link:
        items.append((t(_("WhatsApp chat")), ctx.whatsapp_link, "whatsapp-link"))
    if ctx.max_link:
        items.append((t(_("MAX bot")), ctx.max_link, "max-link"))
    if ctx.staff_invite_link:
        items.append((t(_("Staff invite link")), ctx.staff_invite_link, "staff-link"))
    rows = "".join(
        f"<li><strong>{escape(label)}</strong><br>"
        f'<a id="{anchor}" href="{escape(url)}" rel="noreferrer noopener" target="_blank">'
        f"{escape(url)}</a></li>"
        for label, url, anchor in items
    )
    poster = ""
    if ctx.poster_url:
        heading = escape(t(_("Poster for the reception desk")))
        hint = escape(t(_("Print it and put it where clients wait.")))
        download = escape(t(_("Download the poster (PNG)")))
        url = escape(ctx.poster_url)
        poster = (
            f'<div class="card poster"><h2>{heading}</h2><p>{hint}</p>'
            f'<img id="poster" src="{url}" alt="{escape(ctx.title)}">'
            f'<p><a class="button" id="poster-download" href="{url}&amp;download=1" download>'
            f"{download}</a></p></div>"
        )
    connected = escape(t(_("The salon is connected")))
    hand_out = escape(t(_("Hand these links to your clients:")))
    return (
        f'<div class="card" id="links"><h2>{connected}</h2><p>{hand_out}</p>'
        f'<ul class="links">{rows}</ul></div>{poster}'
    )
