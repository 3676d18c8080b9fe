"""web/static/: the pages' stylesheets and script are files, parse, are linked by the pages that
use them, and are served with caching headers (web.assets)."""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.lint_static import STATIC, problems
from web import assets
from web.demo.page import demo_page
from web.home import home_page
from web.onboarding_page import message_page

EXPECTED = {"page.css", "onboarding.css", "onboarding.js", "demo.css", "demo.js"}


Client = TestClient[Any, Any]


@pytest.fixture
async def client(aiohttp_client: Callable[[web.Application], Awaitable[Client]]) -> Client:
    app = web.Application()
    assets.setup_routes(app)
    return await aiohttp_client(app)


def _linked(html: str) -> set[str]:
    found = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="(/static/[^"]*)"', html)
    return {ref.split("?v=")[0].removeprefix("/static/") for ref in found}


def test_the_files_are_there_and_parse() -> None:
    assert {path.name for path in STATIC.iterdir()} == EXPECTED
    assert set(assets.assets()) == EXPECTED
    assert problems() == []
    for name in ("page.css", "onboarding.css", "demo.css"):
        css = (STATIC / name).read_text()
        # Loads nothing of its own: no fonts, images or imports from anywhere.
        assert "url(" not in css and "@import" not in css and "@font-face" not in css


@pytest.mark.skipif(shutil.which("node") is None, reason="node is missing: apt-get install nodejs")
def test_the_syntax_check_catches_a_broken_script_and_a_broken_stylesheet(tmp_path: Path) -> None:
    (tmp_path / "ok.css").write_text("a { color: red; }\n")
    (tmp_path / "bad.css").write_text("a { color red; }\nb {\n")
    (tmp_path / "bad.js").write_text("const = 1;\n")
    found = problems(tmp_path)
    assert [line.split(":")[0] for line in found] == ["bad.css", "bad.css", "bad.js"], found
    assert "SyntaxError" in found[2]


def test_pages_link_what_they_use() -> None:
    assert _linked(home_page("ru")) == {"page.css"}
    assert _linked(message_page("ru", "T", "text")) == {"page.css"}
    assert _linked(demo_page("ru", "Салон")) == {"page.css", "demo.css", "demo.js"}


async def test_a_static_file_is_served_with_its_hash_and_cached_for_good(client: Client) -> None:
    url = assets.url("onboarding.js")
    version = url.split("?v=")[1]
    response = await client.get(url)
    assert response.status == 200
    assert response.content_type == "text/javascript" and response.charset == "utf-8"
    assert await response.read() == (STATIC / "onboarding.js").read_bytes()
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"] == f'"{version}"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"

    css = await client.get(assets.url("page.css"))
    assert css.status == 200 and css.content_type == "text/css"

    # A URL without the current hash (a page from before a deploy) revalidates: 304 by ETag.
    stale = await client.get("/static/onboarding.js?v=0123456789abcdef")
    assert stale.status == 200 and stale.headers["Cache-Control"] == "no-cache"
    again = await client.get("/static/onboarding.js", headers={"If-None-Match": f'"{version}"'})
    assert again.status == 304 and await again.read() == b""
    assert again.headers["ETag"] == f'"{version}"'
    changed = await client.get("/static/onboarding.js", headers={"If-None-Match": '"old"'})
    assert changed.status == 200


@pytest.mark.parametrize(
    "path", ["/static/missing.js", "/static/..%2Fassets.py", "/static/%2E%2E%2Fassets.py"]
)
async def test_only_the_static_files_are_served(client: Client, path: str) -> None:
    assert (await client.get(path)).status == 404


def test_the_package_ships_the_static_files() -> None:
    # setuptools copies web/static/* into a non-editable install (pyproject's package-data).
    pyproject = tomllib.loads((STATIC.parents[1] / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-data"]["web"] == ["static/*"]
