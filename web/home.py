"""GET /: a small page that names the service and points to `/health` (ru/en by
Accept-Language, its stylesheet from web/static/). The owner's demo page takes this place later."""

from __future__ import annotations

from html import escape

from aiohttp import web

from core.i18n import _, gettext, locale_from_accept_language
from web import assets

_TITLE = _("Salonbot")
_ABOUT = _(
    "A loyalty and booking assistant for beauty salons on YClients: clients book, see their "
    "bonuses and show their code in Telegram and WhatsApp."
)
_OWNERS = _("Salon owners connect it from the YClients Marketplace.")
_HEALTH = _("Service status")


def home_page(locale: str) -> str:
    def t(message: str) -> str:
        return escape(gettext(locale, message))

    return (
        "<!doctype html>\n"
        f'<html lang="{escape(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{t(_TITLE)}</title>"
        f'<link rel="stylesheet" href="{escape(assets.url("page.css"))}"></head>'
        f"<body><main><h1>{t(_TITLE)}</h1>"
        f'<div class="card"><p>{t(_ABOUT)}</p><p>{t(_OWNERS)}</p>'
        f'<p><a id="health" href="/health">{t(_HEALTH)}</a></p></div>'
        "</main></body></html>"
    )


async def home_handler(request: web.Request) -> web.Response:
    """GET /"""
    locale = locale_from_accept_language(request.headers.get("Accept-Language"))
    response = web.Response(
        text=home_page(locale), content_type="text/html", headers={"Vary": "Accept-Language"}
    )
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src data:; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", home_handler)
