"""The inbox: every inbound webhook is stored first, then acted on by a worker.

Storing is one INSERT guarded by the unique (source, dedupe_key) constraint, so a duplicate
delivery answers "seen" without a race. A worker claims due events under a lease (PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so several replicas drain one inbox; SQLite has a single writer),
runs the source's handler, and marks the event done, or failed with exponential backoff, or
dead after `max_attempts`. `process_all` does that for a claimed batch, taking together the
events of a source that registered a `Batch` (the YClients record events of one salon, see
core/bookings/events.py). A worker that dies mid-event leaves only a lease, which expires, and
the event is tried again; handlers are idempotent, so a retry changes nothing twice.

The inbox knows no source: each registers its handler once (`Handlers.register`), in the
composition root (web/app.py).

Handlers return the ledger results their work produced; the caller notifies clients about
them after the handler's transactions have committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from core import companies
from core.ledger import LedgerResult
from core.models import InboxEvent, InboxStatus

log = logging.getLogger(__name__)

_KEY_MAX = 255
_SOURCE_MAX = 16  # InboxEvent.source
_ERROR_MAX = 2000

Handler = Callable[[InboxEvent], Awaitable[Sequence[LedgerResult]]]


@dataclass(frozen=True, slots=True)
class InboxPolicy:
    """How the inbox is drained. The defaults give a failing event about half an hour of
    retries (15 s, 30 s, 1 min, … between them) before it is dead."""

    lease: timedelta = timedelta(minutes=2)
    max_attempts: int = 8
    retry_base: timedelta = timedelta(seconds=15)
    retry_max: timedelta = timedelta(minutes=30)
    # A source's events in a batch are applied together (process_all): a bigger batch drains
    # a burst faster, and is still done far inside the lease (bench/README.md, webhooks).
    batch_size: int = 100
    # Seconds the worker sleeps when nothing is due and nothing woke it.
    poll_interval: float = 2.0
    # YClients sends changes in bursts (a bulk edit, a day's visits closed at once). While
    # one is arriving (a webhook within `gather_quiet` s), the worker waits for a pause, and
    # the burst is then taken in full batches instead of a few events per wake-up; the
    # requests storing it keep the CPU meanwhile. A flood with no pause still gets
    # `burst_batch_size` events done every `gather_max` s: batches that small hold the event
    # loop only briefly, where a full one showed in the requests' tail latency, and that pace
    # keeps up with a steady stream from many salons (bench/README.md, webhooks).
    gather_quiet: float = 0.05
    gather_max: float = 0.1
    burst_batch_size: int = 10

    def retry_delay(self, attempts: int) -> timedelta:
        delay: timedelta = self.retry_base * 2 ** max(0, attempts - 1)
        return min(self.retry_max, delay)


@dataclass(frozen=True, slots=True)
class Outcome:
    event: InboxEvent
    status: InboxStatus
    changes: list[LedgerResult] = field(default_factory=list)
    error: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def storable(value: Any) -> Any:
    """The JSON value with what PostgreSQL cannot keep (NUL characters, lone surrogates)
    replaced by U+FFFD: an odd character must not cost the whole event. A value with nothing
    to replace (nearly every one) comes back as it is."""
    return value if _keepable(_as_json(value)) else _repaired(value)


def _as_json(value: Any) -> str | None:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return None


def _keepable(text: str | None) -> bool:
    """Whether the JSON text has no NUL and no lone surrogate. json.dumps writes a NUL as
    `\\u0000`; a string that merely spells that out is taken the slow way, which finds it
    harmless."""
    if text is None or "\\u0000" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _repaired(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
            return "".join(
                "\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in value
            )
        return value
    if isinstance(value, dict):
        return {_repaired(k): _repaired(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_repaired(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ForHook:
    """Store the event only for the salon whose webhook URL carries `token`, and only when the
    event names that salon (`yclients_id`, as the event gives it)."""

    token: str
    yclients_id: object


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of an event offered to `store`."""

    created: bool  # stored now; False for a duplicate, or for an event `hook` kept out
    event_id: int | None  # the new event's id when created
    company_id: int | None  # Company.pk it belongs to; with `hook`, None when no salon has it
    yclients_id: int | None = None  # with `hook`: that salon's YClients id


DedupeKey = str | Callable[[dict[str, Any]], str]

# What InboxEvent.create writes, as one statement that a duplicate key leaves alone.
_STORE = (
    "INSERT INTO inbox_event (source, dedupe_key, company_id, payload, status, received_at, "
    "next_attempt_at, processed_at, attempts, last_error) "
    "VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $6, NULL, 0, NULL) "
    "ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id"
)
# The salon found by its hook token and the event stored for it in one round trip: the
# INSERT runs only when the event's company is that salon and the token is equal byte for
# byte (COLLATE "C"), and a duplicate key leaves the stored event alone (event_id NULL). No
# row at all: no salon has this token.
_STORE_FOR_HOOK = (
    "WITH salon AS (SELECT id, yclients_id, hook_token FROM company WHERE hook_token = $1), "
    "stored AS ("
    "INSERT INTO inbox_event (source, dedupe_key, company_id, payload, status, received_at, "
    "next_attempt_at, processed_at, attempts, last_error) "
    "SELECT $2, $3, salon.id, $4::text::jsonb, $5, $6, $6, NULL, 0, NULL "
    'FROM salon WHERE salon.yclients_id = $7 AND salon.hook_token = $1 COLLATE "C" '
    "ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id) "
    "SELECT salon.id, salon.yclients_id, salon.hook_token, (SELECT id FROM stored) AS event_id "
    "FROM salon"
)
_BIGINT = range(-(2**63), 2**63)
_PENDING = InboxStatus.PENDING.value


async def store(
    source: str,
    dedupe_key: DedupeKey,
    payload: dict[str, Any],
    company_id: int | None = None,
    *,
    hook: ForHook | None = None,
    body: bytes | None = None,
) -> Stored:
    """Store an inbound event once: the unique (source, dedupe_key) decides, so a duplicate
    delivery, racing or not, is answered `created=False`.

    The event belongs to `company_id`, or with `hook` to the salon whose webhook URL it came
    to: nothing is stored when no salon has that token (`company_id` None) or the event names
    another salon (the caller answers 404 or 403). `dedupe_key` may be a function of the
    payload as it is kept (what PostgreSQL cannot keep replaced, see `storable`). `body` is
    the request body `payload` was parsed from, if the caller has it.

    This is every webhook's hot path. On PostgreSQL it is one statement on one pool checkout
    (with `hook`, the salon lookup and the INSERT … ON CONFLICT together), and the body is
    stored as it came when jsonb takes it as it is; elsewhere the lookup, then the ORM.
    """
    conn = connections.get("default")
    if conn.capabilities.dialect != "postgres" or len(source) > _SOURCE_MAX:
        payload = storable(payload)
        return await _store_orm(source, _key(dedupe_key, payload), payload, company_id, hook)
    text = _verbatim(body)
    as_it_came = text is not None
    if text is None:
        text = _as_json(payload)
        if not _keepable(text):
            # The key too is made from the repaired value: a NUL in it would fail the INSERT.
            payload = _repaired(payload)
            text = json.dumps(payload, ensure_ascii=False)
    key = _key(dedupe_key, payload)
    if len(key) > _KEY_MAX:
        return await _store_orm(source, key, payload, company_id, hook)
    if hook is None:
        sql, args = _STORE, [source, key, company_id, text, _PENDING, _now()]
    else:
        # An id no bigint holds is no salon's: compared as NULL, nothing is stored.
        yclients_id = hook.yclients_id
        wanted = yclients_id if isinstance(yclients_id, int) and yclients_id in _BIGINT else None
        sql, args = _STORE_FOR_HOOK, [hook.token, source, key, text, _PENDING, _now(), wanted]
    db: Any
    async with conn.acquire_connection() as db:
        # asyncpg itself, without the ORM's per-query wrapping (exception translation,
        # logging, rows as dicts).
        try:
            row = await db.fetchrow(sql, *args)
        except asyncpg.DataError:
            if not as_it_came:
                raise
            # jsonb refused the body as it came (a number beyond numeric's range, say); the
            # parsed value, serialised, is taken instead.
            args[3] = json.dumps(payload, ensure_ascii=False)
            row = await db.fetchrow(sql, *args)
    if hook is None:
        event_id = row["id"] if row is not None else None
        return Stored(event_id is not None, event_id, company_id)
    if row is None:
        return Stored(False, None, None)
    if not companies.same_hook_token(row["hook_token"], hook.token):
        # Only a non-deterministic collation could match a near miss; the INSERT's byte
        # comparison kept its event out.
        log.error("the hook token lookup matched a different token; check the collation")
        return Stored(False, None, None)
    event_id = row["event_id"]
    return Stored(event_id is not None, event_id, row["id"], row["yclients_id"])


def _key(dedupe_key: DedupeKey, payload: dict[str, Any]) -> str:
    return dedupe_key if isinstance(dedupe_key, str) else dedupe_key(payload)


async def _store_orm(
    source: str,
    key: str,
    payload: dict[str, Any],
    company_id: int | None,
    hook: ForHook | None,
) -> Stored:
    yclients_id: int | None = None
    if hook is not None:
        company = await companies.by_hook_token(hook.token)
        if company is None:
            return Stored(False, None, None)
        company_id, yclients_id = company.pk, company.yclients_id
        if hook.yclients_id != company.yclients_id:
            return Stored(False, None, company_id, yclients_id)
    try:
        event = await InboxEvent.create(
            source=source,
            dedupe_key=key,
            payload=payload,
            company_id=company_id,
            next_attempt_at=_now(),
        )
    except IntegrityError:
        # The unique constraint decides, so two racing deliveries store one event.
        if not await InboxEvent.exists(source=source, dedupe_key=key):
            raise
        return Stored(False, None, company_id, yclients_id)
    return Stored(True, event.id, company_id, yclients_id)


def _verbatim(body: bytes | None) -> str | None:
    """The body as the text to store, when it is UTF-8 JSON that jsonb keeps exactly: no
    `\\u` escape at all, so none that jsonb refuses (a NUL or a lone surrogate), and no NUL
    byte (UTF-16 JSON, which json.loads reads too). Else None, and the parsed value is
    serialised instead. Only a body that parsed as JSON may come here."""
    if body is None or b"\\u" in body or b"\x00" in body:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def claim(policy: InboxPolicy, *, now: datetime | None = None) -> list[InboxEvent]:
    """Take up to `batch_size` due pending events and lease them for `policy.lease`.

    The lease is committed before any work starts: another worker skips these rows until it
    expires, and a worker that dies leaves nothing worse than a lease to wait out.
    """
    now = now or _now()
    until = now + policy.lease
    async with in_transaction() as conn:
        # In the index's own order, so the scan stops after `batch_size` rows however many
        # are due (ordering by id too made PostgreSQL read and sort every due row whenever
        # its statistics still said the inbox was empty); ties are put in id order below.
        query = (
            InboxEvent.filter(status=InboxStatus.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .limit(policy.batch_size)
        )
        if conn.capabilities.dialect == "postgres":
            query = query.select_for_update(skip_locked=True)
        events = sorted(await query.using_db(conn), key=lambda e: (e.next_attempt_at, e.id))
        if not events:
            return []
        await (
            InboxEvent.filter(id__in=[e.id for e in events])
            .using_db(conn)
            .update(next_attempt_at=until, attempts=F("attempts") + 1)
        )
    for event in events:
        event.next_attempt_at = until
        event.attempts += 1
    return events


async def mark_done(event: InboxEvent, *, now: datetime | None = None) -> None:
    event.status = InboxStatus.DONE
    event.processed_at = now or _now()
    event.next_attempt_at = None
    await event.save(update_fields=["status", "processed_at", "next_attempt_at"])


async def mark_failed(
    event: InboxEvent, error: str, policy: InboxPolicy, *, now: datetime | None = None
) -> InboxStatus:
    """Schedule a retry with exponential backoff, or give up: dead after `max_attempts`."""
    now = now or _now()
    event.last_error = storable(error)[:_ERROR_MAX]
    if event.attempts >= policy.max_attempts:
        event.status = InboxStatus.DEAD
        event.processed_at = now
        event.next_attempt_at = None
    else:
        event.next_attempt_at = now + policy.retry_delay(event.attempts)
    await event.save(update_fields=["status", "processed_at", "next_attempt_at", "last_error"])
    return event.status


async def counts() -> dict[str, int]:
    """Events per status, every status present."""
    found = dict(
        await InboxEvent.annotate(n=Count("id")).group_by("status").values_list("status", "n")
    )
    return {status.value: int(found.get(status, 0)) for status in InboxStatus}


@dataclass(frozen=True, slots=True)
class Batch:
    """How a source takes several of its events together (optional; see `process_all`).

    `accepts`: whether an event may join a batch. `groups`: a run of accepted events split into
    independent groups, each a list of waves applied in order; a wave that raises sends the
    rest of its group one event at a time through the handler, the other groups stay batched.
    `apply`: one wave's work, committed when it returns, and the ledger results it produced.
    """

    accepts: Callable[[InboxEvent], bool]
    groups: Callable[[Sequence[InboxEvent]], Sequence[Sequence[Sequence[InboxEvent]]]]
    apply: Callable[[Sequence[InboxEvent]], Awaitable[Sequence[LedgerResult]]]


class Handlers:
    """The handler of each source, registered once: the inbox itself knows no source."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._batches: dict[str, Batch] = {}

    def register(self, source: str, handler: Handler, batch: Batch | None = None) -> None:
        """A second registration for one source is refused: it would silently replace one."""
        if source in self._handlers:
            raise ValueError(f"an inbox handler for source {source!r} is registered already")
        if len(source) > _SOURCE_MAX:
            raise ValueError(f"source {source!r} is longer than {_SOURCE_MAX} characters")
        self._handlers[source] = handler
        if batch is not None:
            self._batches[source] = batch

    def handler(self, source: str) -> Handler | None:
        return self._handlers.get(source)

    def batch(self, source: str) -> Batch | None:
        return self._batches.get(source)

    def __contains__(self, source: object) -> bool:
        return source in self._handlers


async def process(event: InboxEvent, handlers: Handlers, policy: InboxPolicy) -> Outcome:
    """Run the event's handler and record the outcome; the handler's ledger results come back
    for the caller to notify about (everything is committed by then)."""
    if event.attempts > policy.max_attempts:
        # Its leases kept running out: whatever handles it dies before it can fail cleanly.
        error = f"gave up after {event.attempts - 1} attempts without an outcome"
        status = await mark_failed(event, error, policy)
        return Outcome(event, status, error=error)
    handler = handlers.handler(event.source)
    try:
        if handler is None:
            raise LookupError(f"no handler for source {event.source!r}")
        changes = list(await handler(event))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "inbox event %s (%s) failed, attempt %s: %s",
            event.id,
            event.source,
            event.attempts,
            error,
            exc_info=True,
        )
        status = await mark_failed(event, error, policy)
        if status is InboxStatus.DEAD:
            log.error("inbox event %s is dead after %s attempts", event.id, event.attempts)
        return Outcome(event, status, error=error)
    await mark_done(event)
    return Outcome(event, InboxStatus.DONE, changes)


async def process_all(
    events: Sequence[InboxEvent],
    handlers: Handlers,
    policy: InboxPolicy,
    *,
    stop: Callable[[], bool] = lambda: False,
) -> AsyncGenerator[Outcome, None]:
    """Claimed events, in order, with the same outcomes as `process` one by one — but the
    events of a source registered with a `Batch` are taken together.

    A run of events its batch accepts (nothing else between them) is split by the batch into
    groups of waves; each wave is applied at once and marked done with one UPDATE. Every other
    event goes through `process`; so does every event of a wave whose batch raised (and those
    after it in its group), which keeps failures, retries and dead events exactly per event. A
    wave's ledger results come with the outcome of its last event; outcomes are yielded as
    soon as they are committed. Once `stop()` is true nothing more is started: the events left
    keep their lease.
    """
    run: list[InboxEvent] = []
    for event in events:
        batch = handlers.batch(event.source)
        batchable = (
            batch is not None and event.attempts <= policy.max_attempts and batch.accepts(event)
        )
        if run and (not batchable or event.source != run[0].source):
            async for outcome in _process_batch(run, handlers, policy, stop):
                yield outcome
            run = []
        if batchable:
            run.append(event)
            continue
        if stop():
            return
        yield await process(event, handlers, policy)
    if run:
        async for outcome in _process_batch(run, handlers, policy, stop):
            yield outcome


async def _process_batch(
    events: Sequence[InboxEvent],
    handlers: Handlers,
    policy: InboxPolicy,
    stop: Callable[[], bool],
) -> AsyncGenerator[Outcome, None]:
    batch = handlers.batch(events[0].source)
    if batch is None:
        raise LookupError(f"no batch handler for source {events[0].source!r}")
    for group in batch.groups(events):
        for index, wave in enumerate(group):
            if stop():
                return
            try:
                changes = list(await batch.apply(wave))
            except Exception as exc:
                log.warning(
                    "inbox: a batch of %d %s event(s) failed (%s: %s); each goes alone",
                    len(wave),
                    wave[0].source,
                    type(exc).__name__,
                    exc,
                )
                for event in (e for rest in group[index:] for e in rest):
                    if stop():
                        return
                    yield await process(event, handlers, policy)
                break
            await _mark_all_done(wave)
            for event in wave[:-1]:
                yield Outcome(event, InboxStatus.DONE)
            yield Outcome(wave[-1], InboxStatus.DONE, changes)


async def _mark_all_done(events: Sequence[InboxEvent]) -> None:
    now = _now()
    await InboxEvent.filter(id__in=[e.id for e in events]).update(
        status=InboxStatus.DONE, processed_at=now, next_attempt_at=None
    )
    for event in events:
        event.status = InboxStatus.DONE
        event.processed_at = now
        event.next_attempt_at = None
