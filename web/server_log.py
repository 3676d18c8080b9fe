"""The logger aiohttp's request handler writes to, minus the noise an attacker controls.

aiohttp logs every request its parser rejects (a request line too long, a bad method, a broken
header) as `Error handling request` at ERROR with a traceback, though it already answered 400
and nothing of ours ran. Those become one INFO line without a traceback; a real failure of a
handler (a 500) stays an ERROR with its traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

_DETAIL_LIMIT = 200


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    def __init__(self, logger: logging.Logger = server_logger) -> None:
        super().__init__(logger, {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            kwargs.pop("exc_info")
            detail = " ".join(exc.message.split())[:_DETAIL_LIMIT]
            msg, args = f"{msg}: %s %s %s", (*args, exc.code, type(exc).__name__, detail)
            level = min(level, logging.INFO)
        super().log(level, msg, *args, **kwargs)
