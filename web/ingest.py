"""One way in for every webhook the inbox keeps (YClients' per-salon hook and lifecycle
events, WAHA's events): the body within WEBHOOK_MAX_BODY (chunked bodies too, web.edge), the
route's own parsing and authentication, the event stored once, counted, the inbox worker woken,
and the answer — 503 when storage fails, so the sender delivers it again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from core import inbox
from web.edge import BodyRefused, read_body, refused_response
from web.keys import INBOX_WAKEUP, METRICS

log = logging.getLogger(__name__)

# Every webhook's body, Telegram's updates included: far above what any sender posts (events
# and updates are a few kilobytes), far below what would hurt to hold in memory.
WEBHOOK_MAX_BODY = 512 * 1024
# The answers to a stored event, serialised once (the YClients hook is the hot path).
_STORED = json.dumps({"ok": True, "duplicate": False}).encode()
_DUPLICATE = json.dumps({"ok": True, "duplicate": True}).encode()
_TRY_LATER = {"ok": False, "error": "try again later"}


class Refused(BodyRefused):
    """An event that will never be taken; `status` is the answer (4xx) and `reason` says why."""


@dataclass(frozen=True, slots=True)
class Event:
    """A webhook's event as the inbox stores it (see core.inbox.store)."""

    dedupe_key: inbox.DedupeKey
    payload: dict[str, Any]
    company_id: int | None = None
    hook: inbox.ForHook | None = None
    # The request body `payload` was parsed from, when it is all of it.
    body: bytes | None = None


Parse = Callable[[bytes], Awaitable[Event]]
Check = Callable[[Event, inbox.Stored], None]


async def ingest(
    request: web.Request,
    source: str,
    parse: Parse,
    *,
    refused: Callable[[BodyRefused], Awaitable[BodyRefused]] | None = None,
    admit: contextlib.AbstractAsyncContextManager[Any] | None = None,
    check: Check | None = None,
    bulk: bool = False,
) -> web.Response:
    """Read, `parse` (Refused for a body that will never be taken), store, count, wake, answer.

    `refused` may restate a refusal (the YClients hook answers an unknown URL first); `admit`
    is held around the store (the YClients hook's FIFO semaphore); `check` may refuse what the
    store found (the hook's salon); `bulk` events let the worker gather a burst.
    """
    try:
        try:
            event = await parse(await read_body(request, WEBHOOK_MAX_BODY))
        except BodyRefused as exc:
            if refused is None:
                raise
            raise await refused(exc) from None
        async with admit or contextlib.nullcontext():
            stored = await inbox.store(
                source,
                event.dedupe_key,
                event.payload,
                company_id=event.company_id,
                hook=event.hook,
                body=event.body,
            )
        if check is not None:
            check(event, stored)
    except BodyRefused as exc:
        return refused_response(exc, {"ok": False, "error": exc.reason})
    except Exception:
        # The database, not the body: ask the sender to deliver it again later.
        log.exception("a %s webhook could not be stored", source)
        return web.json_response(_TRY_LATER, status=503)
    created = stored.created
    request.app[METRICS].inbox_received.labels(source, "false" if created else "true").inc()
    if created:
        request.app[INBOX_WAKEUP].set(bulk=bulk)
    return web.Response(body=_STORED if created else _DUPLICATE, content_type="application/json")
