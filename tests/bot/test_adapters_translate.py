"""The chat adapters only translate (parse → Session → dialog → render → send): what a client
card is, which language a person reads and how a chat is greeted are the dialog's and core's.
Checked on the imports, so a second copy of linking or of the locale rule shows here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = sorted(
    [
        *(ROOT / "bot" / "whatsapp").glob("*.py"),
        *(ROOT / "bot" / "telegram").rglob("*.py"),
        *(ROOT / "bot" / "max").glob("*.py"),
    ]
)
# Services the dialog (and core.clients) use on an adapter's behalf.
NOT_FOR_ADAPTERS = ("core.clients", "core.ledger", "core.staff")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_an_adapter_leaves_clients_and_balances_to_the_dialog(path: Path) -> None:
    imported = _imports(path)
    assert not {m for m in imported if m.startswith(NOT_FOR_ADAPTERS)}, path


def test_the_whatsapp_channel_keeps_no_locale_rule_greeting_or_timeout_of_its_own() -> None:
    source = (ROOT / "bot" / "whatsapp" / "channel.py").read_text(encoding="utf-8")
    imported = _imports(ROOT / "bot" / "whatsapp" / "channel.py")
    assert "core.i18n.pick_locale" not in imported
    assert "Welcome to {salon}" not in source
    assert "CONFIRM_WITHIN" not in source and "time.time" not in source
