"""What a WhatsApp message means: WhatsApp has no buttons a bot can rely on, so the menu is
numbered text, and common words in both languages stand for the same choices. The console
(`salonbot chat`) reads typed lines the same way (`answer`).

Words are compared whole, after dropping emoji and punctuation and ignoring case (`Баланс!`
is `баланс`), so a sentence that merely contains one is not taken for it.
"""

from __future__ import annotations

from bot.dialog import Dialog, Intent, Reply, Session, actions
from bot.dialog.actions import Action
from bot.dialog.menu import intent_for, label
from core import codes
from core.i18n import _, gettext

# The numbered menu, in the order it is shown; 0 is always "the menu" (and ends a flow).
NUMBERS: dict[str, Intent] = {
    "1": Intent.BOOK,
    "2": Intent.BALANCE,
    "3": Intent.MY_CODE,
    "4": Intent.VISITS,
    "5": Intent.LANGUAGE,
    "6": Intent.REMINDERS,
}
MENU = "0"
MENU_LABEL = _("☰ Menu")

WORDS: dict[str, Intent] = {
    **dict.fromkeys(
        ("записаться", "запись", "записать", "записаться на приём", "book", "booking"),
        Intent.BOOK,
    ),
    **dict.fromkeys(
        (
            "баланс",
            "бонусы",
            "бонус",
            "баллы",
            "мои бонусы",
            "balance",
            "bonuses",
            "bonus",
            "points",
            "my bonuses",
        ),
        Intent.BALANCE,
    ),
    **dict.fromkeys(("код", "мой код", "qr", "code", "my code"), Intent.MY_CODE),
    **dict.fromkeys(("визиты", "мои визиты", "визит", "visits", "my visits"), Intent.VISITS),
    **dict.fromkeys(("язык", "language", "lang"), Intent.LANGUAGE),
    **dict.fromkeys(("напоминания", "уведомления", "reminders"), Intent.REMINDERS),
}
MENU_WORDS = frozenset({"меню", "menu", "помощь", "help", "старт", "start", "начать"})
GREETINGS = frozenset(
    {
        "привет",
        "здравствуйте",
        "здравствуй",
        "добрый день",
        "добрый вечер",
        "доброе утро",
        "hi",
        "hello",
        "hey",
        "good morning",
        "good afternoon",
        "good evening",
    }
)
LANGUAGES = {
    "русский": "ru",
    "ru": "ru",
    "по русски": "ru",
    "english": "en",
    "en": "en",
    "английский": "en",
}
YES = frozenset({"да", "д", "yes", "y", "ок", "ok", "подтверждаю", "confirm"})
NO = frozenset({"нет", "н", "no", "n", "отмена", "cancel", "стоп", "stop"})
# Staff commands: the verb, then the client's code (and the amount for a redeem).
STAFF_VERBS: dict[str, Intent] = {
    "списать": Intent.REDEEM,
    "redeem": Intent.REDEEM,
    "найти": Intent.LOOKUP,
    "lookup": Intent.LOOKUP,
    "find": Intent.LOOKUP,
    # Admins (anyone else is answered as for unknown text).
    "настройки": Intent.SETTINGS,
    "settings": Intent.SETTINGS,
    "сотрудники": Intent.TEAM,
    "персонал": Intent.TEAM,
    "staff": Intent.TEAM,
    "статистика": Intent.STATS,
    "цифры": Intent.STATS,
    "stats": Intent.STATS,
}


def key(text: str) -> str:
    """Lower case, words only: emoji and punctuation dropped, `ё` read as `е` for matching."""
    words = "".join(ch if ch.isalnum() else " " for ch in text).split()
    return " ".join(words).casefold().replace("ё", "е")


# Keys are compared after `key()`: spell the stored words the same way.
WORDS = {key(word): intent for word, intent in WORDS.items()}


def confirmation(text: str, token: str) -> Action | None:
    """The button of a redeem waiting for confirmation that a typed «да» (Confirm) or «нет»
    (Cancel) presses; None for anything else."""
    word = key(text)
    if word in YES:
        return actions.ConfirmRedeem(token)
    if word in NO:
        return actions.CancelRedeem(token)
    return None


def menu_lines(locale: str, *, staff: bool, admin: bool = False) -> str:
    """`1 — 📅 Book` … `0 — ☰ Menu`, and the staff commands for staff (and admins)."""
    lines = [f"{number} — {label(intent, locale)}" for number, intent in NUMBERS.items()]
    lines.append(f"{MENU} — {gettext(locale, MENU_LABEL)}")
    if staff:
        lines += [
            "",
            gettext(
                locale,
                "For staff: “списать CODE AMOUNT” (or “redeem CODE AMOUNT”) redeems bonuses, "
                "“найти CODE” (“lookup CODE”) finds a client.",
            ),
        ]
    if staff and admin:
        lines.append(
            gettext(
                locale,
                "For admins: “настройки” (settings), “сотрудники” (staff and invites), "
                "“статистика” (the salon's figures).",
            )
        )
    return "\n".join(lines)


async def answer(
    dialog: Dialog, s: Session, text: str, *, first: bool = False
) -> list[Reply] | None:
    """The answer to a typed message once the channel's own numbered choices and confirmation
    are dealt with: `0` and menu words, input for a flow under way, the menu numbers, staff
    commands, words, languages, greetings, then what every channel understands (`/commands`,
    menu labels, a code). None when nothing understood it."""
    # The visit loop's words first: «да» answers a reminder, «нет» the question whether to
    # cancel it, «стоп»/«старт» the client's say (the dialog knows when they mean that).
    replied = await dialog.loop_word(s, text)
    if replied is not None:
        return replied
    word = key(text)
    if text == MENU or word in MENU_WORDS or (s.state and word in NO):
        if s.state or s.data.get("redeem"):
            return await dialog.intent(s, Intent.CANCEL)
        return [Reply(s._("What would you like to do?"), menu=await dialog.menu(s))]
    verb, _sep, rest = text.partition(" ")
    if key(verb) in STAFF_VERBS and s.state != "adjust:reason":
        # `списать CODE 500` starts afresh even in a flow (a wrong code leaves the redeem
        # open for the next try, which may be typed as a whole command again).
        return await dialog.intent(s, STAFF_VERBS[key(verb)], rest)
    if s.state:
        # A flow under way takes what is typed (a code, an amount, a reason) first.
        return await dialog.text(s, text)
    if text in NUMBERS:
        return await dialog.intent(s, NUMBERS[text])
    if word in WORDS:
        return await dialog.intent(s, WORDS[word])
    if word in LANGUAGES:
        return await dialog.set_language(s, LANGUAGES[word])
    if word in GREETINGS:
        return [] if first else await dialog.welcome(s)
    if text.startswith("/") or intent_for(text) is not None or codes.parse(text):
        return await dialog.text(s, text)
    return None
