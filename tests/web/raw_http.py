"""HTTP over a bare socket, for what aiohttp's client will not send: bytes that are not UTF-8
in a header, a body announced by Content-Length that never comes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient

# A guard against a hanging server so a failing test ends; never an assertion on speed.
GUARD = 20.0


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def request_bytes(
    method: str,
    path: str,
    headers: list[tuple[str, bytes | str]] | None = None,
    body: bytes = b"",
    *,
    content_length: int | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    for name, value in headers or []:
        lines.append(
            name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        )
    lines.append(b"Content-Length: %d" % (len(body) if content_length is None else content_length))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def exchange(client: TestClient[Any, Any], data: bytes) -> RawResponse:
    """Send `data` as it is and read one response."""
    async with asyncio.timeout(GUARD):
        reader, writer = await asyncio.open_connection(client.host, client.port)
        try:
            writer.write(data)
            await writer.drain()
            return await read_response(reader)
        finally:
            writer.close()


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    status_line = await reader.readline()
    assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), status_line
    response = RawResponse(int(status_line.split()[1]))
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        response.headers[name.strip().lower()] = value.strip()
    length = response.headers.get("content-length")
    if length is not None:
        response.body = await reader.readexactly(int(length))
    return response
