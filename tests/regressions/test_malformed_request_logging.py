"""Low 7: a request aiohttp's parser rejects was logged at ERROR with a traceback (and the
traceback carried the request line, path secret included). Now: one INFO (or DEBUG) line
without a traceback; a handler's real failure is still an ERROR with its traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.settings import Settings
from web.app import create_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]

SECRET = "path-secret-0123456789abcdef"
MALFORMED = {
    "request line too long": b"POST /webhook/telegram/"
    + SECRET.encode()
    + b"x" * 9000
    + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad method first": b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    # aiohttp itself logs a bad method on a connection's first request at DEBUG, but not later.
    "bad method after a good request": b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    "broken header": b"GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
    "bad version": b"GET / HTTP/9.x\r\nHost: a\r\n\r\n",
}


async def _exchange(port: int, raw: bytes, *, after_a_good_one: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if after_a_good_one:
            writer.write(b"GET /no-such-page HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 404")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        writer.write(raw)
        await writer.drain()
        # The server answers 400 and closes: by then it has logged.
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("a real bug")


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_malformed_request_is_one_quiet_line(
    name: str,
    aiohttp_client: ClientFactory,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await aiohttp_client(create_app(settings))
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    answer = await _exchange(client.port, MALFORMED[name], after_a_good_one="after" in name)
    assert b" 400 Bad Request\r\n" in answer, answer[:200]
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records, "the rejection is still logged"
    for record in records:
        assert record.levelno <= logging.INFO, record.getMessage()
        assert record.exc_info is None and record.exc_text is None
        assert "\n" not in record.getMessage()


async def test_a_handler_failure_is_still_an_error_with_its_traceback(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)
    app.router.add_get("/boom", _boom)
    client = await aiohttp_client(app)
    answer = await _exchange(client.port, b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500")
    [record] = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
