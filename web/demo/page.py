"""The demo's pages as HTML strings: the web chat (`GET /`) and the stand-in for YClients'
booking widget (`GET /demo/booking`).

As the onboarding page: the stylesheets and the script are files of web/static/ on this
origin (web.assets), the CSP allows only 'self' (and data: images, the client's QR code),
nothing inline; texts come from the gettext catalog, and the ones the script needs travel in a
JSON data block (never executed).
"""

from __future__ import annotations

import json
from html import escape

from core.i18n import _, gettext
from core.models import Company
from web import assets
from web.demo import catalogue

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_SCRIPT_TEXTS: dict[str, str | dict[str, str]] = {
    "start": _("▶️ Start"),
    "sent_failed": _("The message did not go through; try again."),
    "acted": {
        "complete": _(
            "Done: the visit is marked as attended. The bonus is on its way to the chat."
        ),
        "cancel": _("Done: the visit is cancelled."),
        "move": _("Done: the visit is moved a day later."),
    },
    "act_failed": _("The salon's change did not go through: {error}"),
    "no_visit": _("No visit booked: the next action books one first."),
    "status": {
        "waiting": _("waiting"),
        "confirmed": _("confirmed by the client"),
        "came": _("attended"),
        "cancelled": _("cancelled"),
        "no_show": _("missed"),
    },
    "notice": _("notice"),
}


def _document(locale: str, title: str, body: str, *, script: bool) -> str:
    tag = f'<script src="{escape(assets.url("demo.js"))}" defer></script>' if script else ""
    return (
        "<!doctype html>\n"
        f'<html lang="{escape(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title>"
        f'<link rel="stylesheet" href="{escape(assets.url("page.css"))}">'
        f'<link rel="stylesheet" href="{escape(assets.url("demo.css"))}">'
        f"{tag}</head><body>{body}</body></html>"
    )


def _chat(role: str, heading: str, note: str, placeholder: str, send: str) -> str:
    return (
        f'<section class="pane chat" id="{role}" data-role="{role}">'
        f'<h2>{escape(heading)}</h2><p class="note">{escape(note)}</p>'
        '<div class="log" aria-live="polite"></div>'
        '<div class="keys"></div>'
        '<form class="say" autocomplete="off">'
        f'<input name="text" maxlength="2000" placeholder="{escape(placeholder)}" '
        f'aria-label="{escape(placeholder)}">'
        f'<button type="submit">{escape(send)}</button></form></section>'
    )


_TITLE = _("Salonbot demo: {salon}")
_ABOUT = _(
    "Salonbot is a loyalty and booking assistant for salons on YClients: clients collect "
    "bonuses for visits and pay with them."
)
_HINT = _(
    "Try it in three steps: in the client's chat press “▶️ Start”, then “🔑 My code”; then in "
    "YClients press “✅ The client came” — the bonus arrives in the client's chat."
)
_CLIENT = _("You are the client {name}")
_CLIENT_NOTE = _("The bot as a salon's client sees it in Telegram or WhatsApp.")
_STAFF = _("You are the administrator {name}")
_STAFF_NOTE = _("Staff redeem bonuses by the client's code and look clients up.")
_YCLIENTS = _("YClients: the salon’s booking journal")
_YCLIENTS_NOTE = _(
    "Here you play the salon: what you do comes to the bot as YClients webhooks, as in a real "
    "salon."
)
_NEXT_VISIT = _("The client {name}, next visit:")
_ACTS = {
    "complete": _("✅ The client came"),
    "move": _("↪️ Move a day later"),
    "cancel": _("✖️ Cancel the visit"),
}


def demo_page(locale: str, salon: str) -> str:
    def t(message: str) -> str:
        return gettext(locale, message)

    title = t(_TITLE).format(salon=salon)
    placeholder, send = t(_("Type a message")), t(_("Send"))
    client = _chat(
        "client",
        t(_CLIENT).format(name=catalogue.CLIENT_NAME),
        t(_CLIENT_NOTE),
        placeholder,
        send,
    )
    staff = _chat(
        "staff", t(_STAFF).format(name=catalogue.STAFF_NAME), t(_STAFF_NOTE), placeholder, send
    )
    # The first is what the visitor is invited to press; the others are quieter.
    acts = "".join(
        f'<button type="button" data-action="{action}"{klass}>{escape(t(label))}</button>'
        for (action, label), klass in zip(_ACTS.items(), ("", *[' class="plain"'] * 2), strict=True)
    )
    yclients = (
        f'<section class="pane" id="yclients"><h2>{escape(t(_YCLIENTS))}</h2>'
        f'<p class="note">{escape(t(_YCLIENTS_NOTE))}</p>'
        f'<p class="label">{escape(t(_NEXT_VISIT).format(name=catalogue.CLIENT_NAME))}</p>'
        f'<p id="visit" class="visit">…</p><div class="acts">{acts}</div>'
        '<p id="acted" class="acted" aria-live="polite"></p></section>'
    )
    config = {
        "locale": locale,
        "timezone": catalogue.TIMEZONE,
        "t": {
            key: {k: t(v) for k, v in value.items()} if isinstance(value, dict) else t(value)
            for key, value in _SCRIPT_TEXTS.items()
        },
    }
    # `<` escaped, so nothing in the JSON can close the script element.
    blob = json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")
    body = (
        f'<main class="demo"><h1>{escape(title)}</h1>'
        f'<p class="sub">{escape(t(_ABOUT))}</p>'
        f'<p class="hint" id="hint">{escape(t(_HINT))}</p>'
        f'<div class="panes">{client}{yclients}{staff}</div>'
        f'<script id="cfg" type="application/json">{blob}</script></main>'
    )
    return _document(locale, title, body, script=True)


_BOOKING_TITLE = _("Online booking: {salon}")
_BOOKING_REAL = _(
    "In a real salon this is where YClients online booking opens: the client picks a service, "
    "a master and a time, and the record comes to the bot by webhook."
)
_BOOKING_DEMO = _(
    "In the demo the client already has visits booked: go back and play the salon in the "
    "YClients panel."
)


def booking_page(locale: str, company: Company) -> str:
    def t(message: str) -> str:
        return gettext(locale, message)

    catalogue_ = company.catalogue or {}
    services = "".join(
        f"<li>{escape(str(s.get('title')))} — {escape(str(s.get('price_min')))} ₽</li>"
        for s in catalogue_.get("services") or []
        if isinstance(s, dict)
    )
    masters = "".join(
        f"<li>{escape(str(m.get('name')))}, {escape(str(m.get('specialization') or ''))}</li>"
        for m in catalogue_.get("staff") or []
        if isinstance(m, dict)
    )
    title = t(_BOOKING_TITLE).format(salon=company.title)
    body = (
        f'<main><h1>{escape(title)}</h1><div class="card">'
        f"<p>{escape(t(_BOOKING_REAL))}</p><p>{escape(t(_BOOKING_DEMO))}</p>"
        f'<p><a class="button" href="/">{escape(t(_("Back to the demo")))}</a></p></div>'
        f'<div class="card"><h2>{escape(t(_("Services")))}</h2><ul>{services}</ul>'
        f"<h2>{escape(t(_('Masters')))}</h2><ul>{masters}</ul></div></main>"
    )
    return _document(locale, title, body, script=False)
