"""Every user-facing message is translated in every locale, and the catalogs are current."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from core.i18n import LOCALES, LOCALES_DIR

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "__": None, "gettext": (2,), "ngettext": (2, 3)}


def source_messages() -> set[str]:
    found: set[str] = set()
    for package in ("core", "bot", "web"):
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            ROOT / package,
            method_map=[("**.py", "python"), ("**.html", "jinja2")],
            keywords=KEYWORDS,
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_message_is_translated_in_every_locale() -> None:
    messages = source_messages()
    assert messages, "no messages extracted: is the extraction keyword list right?"
    for locale in LOCALES:
        with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
            catalog = read_po(f, locale=locale)
        translated = {
            (m.id[0] if isinstance(m.id, tuple) else m.id)
            for m in catalog
            if m.id and not m.fuzzy and (all(m.string) if isinstance(m.string, tuple) else m.string)
        }
        missing = sorted(messages - translated)
        assert not missing, f"{locale}: untranslated (run `make locales-update`): {missing}"


def test_compiled_catalogs_are_built_by_setup() -> None:
    for locale in LOCALES:
        assert (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.mo").exists()
