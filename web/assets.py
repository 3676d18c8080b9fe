"""The pages' stylesheets and script (web/static/), served from memory at GET /static/{name}.

A page links `url(name)`: `/static/<name>?v=<content hash>`. That URL never changes meaning, so
it is cached for a year as immutable; a new file gets a new URL. Any other URL of the file
(a page from before a deploy) is answered with `no-cache`, and every answer carries an ETag, so
a revalidation costs a 304. Same origin, so the pages' CSP stays `script-src 'self'`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/static/"
_TYPES = {".css": "text/css", ".js": "text/javascript"}
_IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@functools.cache
def assets() -> Mapping[str, Asset]:
    """Every .css and .js file of web/static/ by name, read once."""
    found = {}
    for path in sorted(STATIC_DIR.iterdir()):
        content_type = _TYPES.get(path.suffix)
        if content_type is not None and path.is_file():
            body = path.read_bytes()
            found[path.name] = Asset(body, content_type, hashlib.sha256(body).hexdigest()[:16])
    return found


def url(name: str) -> str:
    """The content-hashed URL of a static file (KeyError for a name that is not there)."""
    return f"{PREFIX}{name}?v={assets()[name].version}"


async def static_handler(request: web.Request) -> web.StreamResponse:
    """GET /static/{name}"""
    asset = assets().get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    headers = {
        "ETag": asset.etag,
        "Cache-Control": _IMMUTABLE if request.query.get("v") == asset.version else "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if any(tag.value in (asset.version, "*") for tag in request.if_none_match or ()):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "{name}", static_handler)
