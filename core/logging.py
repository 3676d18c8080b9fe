"""One logging set-up: readable lines in a terminal, JSON lines with LOG_FORMAT=json.

Secrets are never passed to a logger; as a second guard every configured secret value is
masked in whatever a record renders to.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
        return True


def setup_logging(level: str = "INFO", fmt: str = "console", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request access lines belong to /metrics, not the log.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # httpx logs every outgoing request at INFO: two or three lines per WhatsApp answer. Our
    # clients log what failed themselves; DEBUG still shows every request.
    quiet = logging.getLevelName(level) > logging.DEBUG
    logging.getLogger("httpx").setLevel(logging.WARNING if quiet else logging.DEBUG)
    logging.getLogger("tortoise").setLevel(max(logging.WARNING, logging.getLevelName(level)))
