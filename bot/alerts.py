"""What the salon's staff are told in chat about the salon's own channels: the WhatsApp
watchdog's alerts (core.whatsapp.watchdog decides when; these words say what happened), and
the salon's own Telegram bot switched off because Telegram refuses its token."""

from __future__ import annotations

from core.i18n import _, gettext
from core.whatsapp.watchdog import Alert, Trouble

_TEXTS = {
    Trouble.DOWN: _(
        "WhatsApp of {salon} stopped working and an automatic restart did not help. Clients "
        "get no answers there. The bot keeps trying; if it stays down, link WhatsApp again on "
        "the onboarding page (open the app in YClients)."
    ),
    Trouble.CAPPED: _(
        "WhatsApp of {salon} is down and the automatic restarts are used up for now (WhatsApp "
        "blocks new links for hours after too many attempts). Please wait, then link WhatsApp "
        "again on the onboarding page (open the app in YClients)."
    ),
    Trouble.UNLINKED: _(
        "WhatsApp of {salon} was unlinked from the phone. Clients get no answers there until "
        "it is linked again: open the app in YClients and scan the new QR code."
    ),
    Trouble.RECOVERED: _("WhatsApp of {salon} works again."),
}


def alert_text(alert: Alert, locale: str, salon: str) -> str:
    return gettext(locale, _TEXTS[alert.trouble]).format(salon=salon)


_SALON_BOT_REFUSED = _(
    "The Telegram bot {bot} of {salon} is switched off: Telegram no longer accepts its token "
    "(it was revoked or replaced in @BotFather). Clients who write to it get no answer. Please "
    "take the bot's new token from @BotFather (/mybots, API Token) and give it to Salonbot "
    "again."
)


def salon_bot_refused_text(locale: str, *, salon: str, bot: str) -> str:
    return gettext(locale, _SALON_BOT_REFUSED).format(salon=salon, bot=bot).replace("  ", " ")
