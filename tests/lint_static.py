"""The syntax check of web/static/ in `make lint` (and tests/web/test_assets.py): `node --check`
for every script, tinycss2's parser for every stylesheet.

Browsers skip a broken CSS rule or a whole script in silence, so the check catches what no page
test would show as an error. Run: `python tests/lint_static.py`; exit 1 with the problems.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import tinycss2

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
_COMMENTS_AND_STRINGS = re.compile(r"/\*.*?\*/|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'", re.S)


def _css_errors(nodes: Iterable[Any], where: str) -> Iterator[str]:
    for node in nodes:
        if node.type == "error":
            yield f"{where}:{node.source_line}: {node.message}"
        elif node.type == "qualified-rule":
            declarations = tinycss2.parse_declaration_list(
                node.content, skip_comments=True, skip_whitespace=True
            )
            yield from _css_errors(declarations, where)
        elif node.type == "at-rule" and node.content is not None:
            rules = tinycss2.parse_rule_list(node.content, skip_comments=True, skip_whitespace=True)
            yield from _css_errors(rules, where)


def css_problems(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    problems = list(
        _css_errors(
            tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True), path.name
        )
    )
    # The parser closes an unclosed block at the end in silence; count them.
    bare = _COMMENTS_AND_STRINGS.sub("", text)
    if bare.count("{") != bare.count("}"):
        problems.append(f"{path.name}: {bare.count('{')} '{{' against {bare.count('}')} '}}'")
    return problems


def js_problems(path: Path) -> list[str]:
    node = shutil.which("node")
    if node is None:
        return [f"{path.name}: node is missing (apt-get install nodejs, or `make system-deps`)"]
    checked = subprocess.run(
        [node, "--check", str(path)], capture_output=True, text=True, check=False
    )
    return [f"{path.name}: {checked.stderr.strip()}"] if checked.returncode else []


def problems(static: Path = STATIC) -> list[str]:
    found: list[str] = []
    for path in sorted(static.iterdir()):
        if path.suffix == ".css":
            found += css_problems(path)
        elif path.suffix == ".js":
            found += js_problems(path)
        else:
            found.append(f"{path.name}: only .css and .js files are served from web/static/")
    return found


if __name__ == "__main__":
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    sys.exit(1 if found else 0)
