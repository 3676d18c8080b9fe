"""What a request brings from outside — credential headers and bodies — read so that hostile
input gets a clear 4xx, never a 500 or a connection held for ever.

* Credentials are ASCII. aiohttp hands a header over as UTF-8 with undecodable bytes kept as
  lone surrogates, which `.encode()` refuses; a header that is not ASCII is read as absent, so
  every credential check refuses it like a missing one.
* A body is read once, within `BODY_TIMEOUT` seconds (408 after), and no larger than the
  route's limit (413); JSON bodies go through `core.jsonbody`, the one decoder (400).
  Handlers read bodies only through `read_body` / `read_json`
  (tests/regressions/test_body_read_timeout.py checks it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from core import jsonbody
from web.keys import BODY_TIMEOUT

# Long enough for any body our senders post; short enough that a sender who announces a body
# and never sends it does not keep the connection (and its handler) for good.
DEFAULT_BODY_TIMEOUT = 15.0


class BodyRefused(Exception):
    """The body cannot be taken; `status` is the answer (400, 408 or 413)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def ascii_header(request: web.Request, name: str) -> str:
    """The header's value, or "" when it is missing or not ASCII (no credential is)."""
    value = request.headers.get(name, "")
    return value if value.isascii() else ""


def bearer_token(request: web.Request) -> str:
    """The token of `Authorization: Bearer <token>`, or "" when there is none to check."""
    scheme, _, token = ascii_header(request, "Authorization").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, at most `limit` bytes, read within the app's BODY_TIMEOUT."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(413, f"the body is larger than {limit} bytes")
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT]):
            if request.content_length is not None:
                # The length is known and small: aiohttp reads exactly that much.
                return await request.read()
            body = bytearray()
            async for chunk in request.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > limit:
                    raise BodyRefused(413, f"the body is larger than {limit} bytes")
            return bytes(body)
    except TimeoutError:
        raise BodyRefused(408, "the body did not arrive in time") from None
    except (ConnectionResetError, HttpProcessingError):
        # The sender hung up mid-body, or its chunked encoding is broken.
        raise BodyRefused(400, "the body was cut short or malformed") from None


async def read_json(request: web.Request, limit: int) -> Any:
    """The body as JSON (core.jsonbody: whatever its Content-Type charset says); BodyRefused
    otherwise."""
    raw = await read_body(request, limit)
    try:
        return jsonbody.decode(raw)
    except jsonbody.InvalidJson as exc:
        raise BodyRefused(400, str(exc)) from None


def refused_response(refused: BodyRefused, body: dict[str, Any]) -> web.Response:
    """The answer to a refused body; a 408 also closes the connection, since what is left of
    the body may still arrive."""
    response = web.json_response(body, status=refused.status, headers={"Cache-Control": "no-store"})
    if refused.status == 408:
        response.force_close()
    return response
