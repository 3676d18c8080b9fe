"""The layering is checked, not remembered: `make lint` runs lint-imports (the contracts in
pyproject's [tool.importlinter]) and ruff's banned-api. These tests prove both hold on the tree
as it is and fail on a copy of it with one bad import of each kind."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PACKAGES = ("core", "bot", "web")

CONTRACTS = (
    "web may import bot and core; bot may import core; core imports neither",
    "core knows no chat library",
    "the inbox is plumbing: it imports no feature folder",
    "the dialog imports no adapter",
)


def _copy(tmp: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # The module under test is imported from cwd, not the installed checkout.
    return subprocess.run(
        [BIN / "lint-imports", "--no-cache", "--no-logo"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": str(BIN)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint_imports(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS:
        assert f"{name} KEPT" in result.stdout


def test_an_upward_import_aiogram_in_core_and_a_nosy_inbox_or_dialog_break_the_lint(
    tmp_path: Path,
) -> None:
    tree = _copy(tmp_path)
    # A core module reaching up to bot (and through it to web) breaks the layers.
    _append(tree / "core" / "models.py", "import bot.companies")
    # The Telegram library inside core.
    _append(tree / "core" / "codes.py", "import aiogram")
    # The inbox knowing a feature folder, and the dialog an adapter. Both contracts survive the
    # files moving into packages: they name `core.inbox` and `bot.dialog`, whatever is under them.
    _append(tree / "core" / "inbox.py", "import core.whatsapp")
    _append(tree / "bot" / "dialog" / "session.py", "import bot.telegram")
    result = _lint_imports(tree)
    assert result.returncode != 0
    for name in CONTRACTS:
        assert f"{name} BROKEN" in result.stdout, result.stdout
    assert "core.models -> bot.companies" in result.stdout
    assert "core.codes -> aiogram" in result.stdout


def test_a_web_import_from_bot_breaks_the_layers(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    _append(tree / "bot" / "qr.py", "import web.keys")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert f"{CONTRACTS[0]} BROKEN" in result.stdout
    assert "bot.qr -> web.keys" in result.stdout


@pytest.mark.parametrize(
    "line", ["from aiohttp import web", "import aiohttp.web", "from aiohttp.web import Response"]
)
def test_aiohttp_web_in_core_fails_ruff_but_its_client_does_not(tmp_path: Path, line: str) -> None:
    tree = tmp_path
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    (tree / "core").mkdir()
    (tree / "web").mkdir()
    probe = tree / "core" / "probe.py"
    probe.write_text(f"{line}\nimport aiohttp\n")
    ruff = [BIN / "ruff", "check", "--no-cache", "--select", "TID251", "--output-format", "concise"]
    bad = subprocess.run(
        [*ruff, "core/probe.py"], cwd=tree, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1 and "TID251 `aiohttp.web` is banned" in bad.stdout, bad.stdout
    # The same import is fine where the server lives.
    shutil.move(probe, tree / "web" / "probe.py")
    ok = subprocess.run(
        [*ruff, "web/probe.py"], cwd=tree, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout
