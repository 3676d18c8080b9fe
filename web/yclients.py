"""POST /webhook/yclients/{hook_token}: one salon's entity events (records, clients, …).

YClients signs nothing; the secret is the salon's hook token in the URL, and the event's
`company_id` must be that salon. A valid event is stored in the inbox and acknowledged at
once; the inbox worker acts on it. Whatever the body, the answer is a 2xx or a 4xx with the
reason, never a 500: a 4xx tells the sender the event will never be taken.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from core import companies, inbox, jsonbody
from core.bookings import YCLIENTS, dedupe_key_for_yclients
from web.edge import BodyRefused, refused_response
from web.ingest import Event, Refused, ingest
from web.keys import YCLIENTS_STORES

# Webhooks stored at once; the others wait their turn in arrival order (a FIFO semaphore).
# Without it, a burst queues on asyncpg's pool, where a newcomer can take a freed connection
# ahead of the waiter woken for it and the tail grows; why four, measured with
# bench/webhooks.py: bench/README.md.
STORES_IN_FLIGHT = 4
STATUSES = frozenset({"create", "update", "delete"})
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def parse_event(raw: bytes) -> dict[str, Any]:
    """The event from a request body, or Refused(400) saying what is wrong with it."""
    try:
        body = jsonbody.decode(raw)
    except jsonbody.InvalidJson as exc:
        raise Refused(400, str(exc)) from None
    if not isinstance(body, dict):
        raise Refused(400, "the body must be a JSON object")
    if not _is_int(body.get("company_id")):
        raise Refused(400, "company_id must be an integer")
    resource = body.get("resource")
    if not isinstance(resource, str) or not resource:
        raise Refused(400, "resource must be a non-empty string")
    resource_id = body.get("resource_id")
    if not (_is_int(resource_id) or isinstance(resource_id, str)):
        raise Refused(400, "resource_id must be an integer or a string")
    status = body.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        raise Refused(400, f"status must be one of {', '.join(sorted(STATUSES))}")
    data = body.get("data")
    if resource == "record":
        if not isinstance(data, dict) or not _is_record_id(data.get("id")):
            raise Refused(400, "a record event needs data as an object with an integer id")
    elif data is not None and not isinstance(data, dict):
        raise Refused(400, "data must be an object or null")
    return body


def _unknown_url() -> Refused:
    return Refused(404, "unknown webhook URL")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_record_id(value: object) -> bool:
    # A positive 64-bit integer, as the booking table stores it.
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


async def yclients_webhook_handler(request: web.Request) -> web.Response:
    token = request.match_info["hook_token"]
    if not _TOKEN.fullmatch(token):
        unknown = _unknown_url()
        return refused_response(unknown, {"ok": False, "error": unknown.reason})

    async def parse(body: bytes) -> Event:
        event = parse_event(body)
        # The salon lookup and the store are one statement on PostgreSQL (inbox.store).
        hook = inbox.ForHook(token, event.get("company_id"))
        return Event(dedupe_key_for_yclients, event, hook=hook, body=body)

    async def refused(exc: BodyRefused) -> BodyRefused:
        # The URL is judged first: a body sent to no salon is answered as such.
        return _unknown_url() if await companies.by_hook_token(token) is None else exc

    def check(event: Event, delivery: inbox.Stored) -> None:
        if delivery.company_id is None:
            raise _unknown_url()
        if event.payload["company_id"] != delivery.yclients_id:
            raise Refused(403, "company_id is not the salon of this webhook URL")

    return await ingest(
        request,
        YCLIENTS,
        parse,
        refused=refused,
        admit=request.app[YCLIENTS_STORES],
        check=check,
        bulk=True,
    )


def setup_routes(app: web.Application) -> None:
    app[YCLIENTS_STORES] = asyncio.Semaphore(STORES_IN_FLIGHT)
    app.router.add_post("/webhook/yclients/{hook_token}", yclients_webhook_handler)
