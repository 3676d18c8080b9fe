"""The inbox: every inbound webhook is stored first, then acted on by a worker.

Storing is one INSERT guarded by the unique (source, dedupe_key) constraint, so a duplicate
delivery answers "seen" without a race. A worker claims due events under a lease (PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so several replicas drain one inbox; SQLite has a single writer),
runs the source's handler, and marks the event done, or failed with exponential backoff, or
dead after `max_attempts`. `process_all` does that for a claimed batch, applying the YClients
record events of one salon together through one `bookings.apply_records`. A worker that dies
mid-event leaves only a lease, which expires, and the event is tried again; handlers are
idempotent, so a retry changes nothing twice.

Handlers return the ledger results their work produced; the caller notifies clients about
them after the handler's transactions have committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from core import bookings, companies
from core.ledger import LedgerResult
from core.models import Client, Company, InboxEvent, InboxStatus, IntegrationStatus
from core.phones import normalize_phone
from core.yclients import parse_yclients_datetime

log = logging.getLogger(__name__)

YCLIENTS = "yclients"
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
    # Record events of one salon in a batch are applied together (process_all): a bigger
    # batch drains a burst about twice as fast as 20 did, and is still done in well under
    # a second, far inside the lease.
    batch_size: int = 100
    # Seconds the worker sleeps when nothing is due and nothing woke it.
    poll_interval: float = 2.0
    # YClients sends changes in bursts (a bulk edit, a day's visits closed at once). While
    # one is arriving (a webhook within `gather_quiet` s), the worker waits for a pause, and
    # the burst is then taken in full batches instead of a few events per wake-up; the
    # requests storing it keep the CPU meanwhile (bench/webhooks.py). A flood with no pause
    # still gets `burst_batch_size` events done every `gather_max` s (100/s): batches that
    # small hold the event loop for milliseconds, where a full one once a second showed in
    # the requests' p99, and 100/s keeps up with a steady stream from many salons.
    gather_quiet: float = 0.05
    gather_max: float = 0.1
    burst_batch_size: int = 10

    def retry_delay(self, attempts: int) -> timedelta:
        return min(self.retry_max, self.retry_base * 2 ** max(0, attempts - 1))


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


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


def _change_stamp(data: object) -> str | None:
    if not isinstance(data, dict):
        return None
    raw = data.get("last_change_date")
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        # `+03:00` and `+0300` spell the same instant: one key for both.
        return parse_yclients_datetime(raw).astimezone(UTC).isoformat()
    except ValueError:
        return raw.strip()


def dedupe_key_for_yclients(payload: Mapping[str, Any]) -> str:
    """company:resource:resource_id:status:last_change_date:hash of `data`.

    Identical deliveries (YClients has sent one change as four identical updates) give one
    key. The hash of the canonical `data` is always part of it, not only when there is no
    `last_change_date`: that date has one-second resolution, and two real changes within a
    second must not be taken for one. A spurious extra event costs nothing — acting on an event
    is idempotent — while a dropped one would lose a change until the next sync.
    """
    data = payload.get("data")
    digest = hashlib.sha256(_canonical(data)).hexdigest()
    stamp = _change_stamp(data) or "-"
    key = ":".join(
        str(part)
        for part in (
            payload.get("company_id"),
            payload.get("resource"),
            payload.get("resource_id"),
            payload.get("status"),
            stamp,
            digest[:32],
        )
    )
    if len(key) > _KEY_MAX:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


async def store(
    source: str, dedupe_key: str, payload: dict[str, Any], company_id: int | None
) -> tuple[InboxEvent, bool]:
    """Store an inbound event once; `(event, False)` when this key was already stored."""
    conn = connections.get("default")
    if (
        conn.capabilities.dialect == "postgres"
        and len(source) <= _SOURCE_MAX
        and len(dedupe_key) <= _KEY_MAX
    ):
        return await _store_pg(conn, source, dedupe_key, payload, company_id)
    try:
        event = await InboxEvent.create(
            source=source,
            dedupe_key=dedupe_key,
            payload=storable(payload),
            company_id=company_id,
            next_attempt_at=_now(),
        )
    except IntegrityError:
        # The unique constraint decides, so two racing deliveries store one event.
        existing = await InboxEvent.get_or_none(source=source, dedupe_key=dedupe_key)
        if existing is None:
            raise
        return existing, False
    return event, True


# What InboxEvent.create writes, as one statement that a duplicate key leaves alone.
_STORE = (
    "INSERT INTO inbox_event (source, dedupe_key, company_id, payload, status, received_at, "
    "next_attempt_at, processed_at, attempts, last_error) "
    "VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $6, NULL, 0, NULL) "
    "ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id"
)


async def _store_pg(
    conn: BaseDBAsyncClient,
    source: str,
    dedupe_key: str,
    payload: dict[str, Any],
    company_id: int | None,
) -> tuple[InboxEvent, bool]:
    """PostgreSQL: the INSERT without the ORM's per-row work, the payload serialised once."""
    text = _as_json(payload)
    if not _keepable(text):
        payload = _repaired(payload)
        text = json.dumps(payload, ensure_ascii=False)
    now = _now()
    values = [source, dedupe_key, company_id, text, InboxStatus.PENDING.value, now]
    rows = await conn.execute_query_dict(_STORE, values)
    if not rows:
        # The unique constraint decided: another delivery of this event came first.
        existing = await InboxEvent.get_or_none(source=source, dedupe_key=dedupe_key)
        if existing is None:
            raise IntegrityError(f"inbox event {source}:{dedupe_key} conflicted and vanished")
        return existing, False
    event = InboxEvent(
        id=rows[0]["id"],
        source=source,
        dedupe_key=dedupe_key,
        company_id=company_id,
        payload=payload,
        status=InboxStatus.PENDING,
        received_at=now,
        next_attempt_at=now,
        attempts=0,
    )
    event._saved_in_db = True
    return event, True


@dataclass(frozen=True, slots=True)
class HookDelivery:
    """What became of an event posted to a salon's webhook URL."""

    salon_id: int | None  # Company.pk; None when no salon has this hook token
    yclients_id: int | None  # that salon's YClients id
    created: bool  # stored now; False for a duplicate, or for an event of another salon


# The salon found by its hook token and the event stored for it in one round trip: the
# INSERT runs only when the event's company_id is that salon's and the token is equal byte for
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


async def store_for_hook(
    hook_token: str, event: dict[str, Any], body: bytes | None = None
) -> HookDelivery:
    """Store a YClients event posted to `hook_token`'s URL if that salon is the event's
    `company_id`; the caller answers 404 (no salon), 403 (another salon's event) or 200.
    `body` is the request body `event` was parsed from, if the caller has it.

    This is the webhook's hot path. On PostgreSQL it is one statement (the salon lookup and
    the INSERT … ON CONFLICT together) on one pool checkout, and the body is stored as it
    came when jsonb takes it as it is; elsewhere the lookup, then `store`.
    """
    company_id = event.get("company_id")
    conn = connections.get("default")
    if conn.capabilities.dialect != "postgres":
        company = await companies.by_hook_token(hook_token)
        if company is None:
            return HookDelivery(None, None, False)
        if company_id != company.yclients_id:
            return HookDelivery(company.pk, company.yclients_id, False)
        event = storable(event)
        _, created = await store(YCLIENTS, dedupe_key_for_yclients(event), event, company.pk)
        return HookDelivery(company.pk, company.yclients_id, created)
    # An id no bigint holds is no salon's: compared as NULL, nothing is stored.
    yclients_id = company_id if isinstance(company_id, int) and company_id in _BIGINT else None
    text = _verbatim(body)
    if text is None:
        # The key too is made from the repaired value: a NUL in it would fail the INSERT.
        event = storable(event)
    key = dedupe_key_for_yclients(event)
    args = [hook_token, YCLIENTS, key, text, _PENDING, _now(), yclients_id]
    db: Any
    async with conn.acquire_connection() as db:
        # asyncpg itself, without the ORM's per-query wrapping (exception translation,
        # logging, rows as dicts).
        if text is not None:
            try:
                row = await db.fetchrow(_STORE_FOR_HOOK, *args)
            except asyncpg.DataError:
                # jsonb refused the body as it came (a number beyond numeric's range, say);
                # the parsed value, serialised, is taken below.
                text = None
        if text is None:
            args[3] = json.dumps(event, ensure_ascii=False)
            row = await db.fetchrow(_STORE_FOR_HOOK, *args)
    if row is None:
        return HookDelivery(None, None, False)
    if not companies.same_hook_token(row["hook_token"], hook_token):
        # Only a non-deterministic collation could match a near miss; the INSERT's byte
        # comparison kept its event out.
        log.error("the hook token lookup matched a different token; check the collation")
        return HookDelivery(None, None, False)
    return HookDelivery(row["id"], row["yclients_id"], row["event_id"] is not None)


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


async def process(
    event: InboxEvent, handlers: Mapping[str, Handler], policy: InboxPolicy
) -> Outcome:
    """Run the event's handler and record the outcome; the handler's ledger results come back
    for the caller to notify about (everything is committed by then)."""
    if event.attempts > policy.max_attempts:
        # Its leases kept running out: whatever handles it dies before it can fail cleanly.
        error = f"gave up after {event.attempts - 1} attempts without an outcome"
        status = await mark_failed(event, error, policy)
        return Outcome(event, status, error=error)
    handler = handlers.get(event.source)
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
    handlers: Mapping[str, Handler],
    policy: InboxPolicy,
    *,
    stop: Callable[[], bool] = lambda: False,
) -> AsyncGenerator[Outcome, None]:
    """Claimed events, in order, with the same outcomes as `process` one by one — but the
    record events of the default YClients handler are taken together.

    A run of such events (nothing else between them) goes, salon by salon, through one
    `bookings.apply_records` per wave and is marked done with one UPDATE. A wave ends before
    a record it already holds, so a record's events still apply one after another and the
    ledger sees every change in the order the events came. Every other event goes through
    `process`; so does every event of a wave whose batch raised (and those after it), which
    keeps failures, retries and dead events exactly per event. A wave's ledger results come
    with the outcome of its last event; outcomes are yielded as soon as they are committed.
    Once `stop()` is true nothing more is started: the events left keep their lease.
    """
    batchable = handlers.get(YCLIENTS) is handle_yclients
    run: list[InboxEvent] = []
    for event in events:
        if batchable and _is_record_event(event, policy):
            run.append(event)
            continue
        async for outcome in _process_records(run, handlers, policy, stop):
            yield outcome
        run = []
        if stop():
            return
        yield await process(event, handlers, policy)
    async for outcome in _process_records(run, handlers, policy, stop):
        yield outcome


def _is_record_event(event: InboxEvent, policy: InboxPolicy) -> bool:
    payload = event.payload
    if event.source != YCLIENTS or event.company_id is None or not isinstance(payload, dict):
        return False
    data = payload.get("data")
    return (
        event.attempts <= policy.max_attempts
        and payload.get("resource") == "record"
        and isinstance(data, dict)
        and isinstance(data.get("id"), int)
        and not isinstance(data.get("id"), bool)
    )


def _waves(events: Sequence[InboxEvent]) -> list[list[InboxEvent]]:
    """Consecutive slices in which no record comes twice."""
    waves: list[list[InboxEvent]] = []
    held: set[int] = set()
    for event in events:
        record_id = event.payload["data"]["id"]
        if not waves or record_id in held:
            waves.append([])
            held = set()
        waves[-1].append(event)
        held.add(record_id)
    return waves


async def _process_records(
    events: Sequence[InboxEvent],
    handlers: Mapping[str, Handler],
    policy: InboxPolicy,
    stop: Callable[[], bool],
) -> AsyncGenerator[Outcome, None]:
    by_company: dict[int, list[InboxEvent]] = {}
    for event in events:
        if event.company_id is None:
            raise RuntimeError("a claimed event without a salon")
        by_company.setdefault(event.company_id, []).append(event)
    for company_id, group in by_company.items():
        if stop():
            return
        company = await Company.get_or_none(id=company_id)
        if company is None or company.integration_status is IntegrationStatus.UNINSTALLED:
            log.info("inbox: %d event(s) of a salon gone or uninstalled, nothing to do", len(group))
            await _mark_all_done(group)
            for event in group:
                yield Outcome(event, InboxStatus.DONE)
            continue
        waves = _waves(group)
        for index, wave in enumerate(waves):
            if stop():
                return
            records = [
                {**e.payload["data"], "deleted": True}
                if e.payload.get("status") == "delete"
                else e.payload["data"]
                for e in wave
            ]
            try:
                stats = await bookings.apply_records(company, records)
            except Exception as exc:
                log.warning(
                    "inbox: a batch of %d record event(s) failed (%s: %s); each goes alone",
                    len(wave),
                    type(exc).__name__,
                    exc,
                )
                for event in (e for rest in waves[index:] for e in rest):
                    if stop():
                        return
                    yield await process(event, handlers, policy)
                break
            await _mark_all_done(wave)
            for event in wave[:-1]:
                yield Outcome(event, InboxStatus.DONE)
            yield Outcome(wave[-1], InboxStatus.DONE, stats.changes)


async def _mark_all_done(events: Sequence[InboxEvent]) -> None:
    now = _now()
    await InboxEvent.filter(id__in=[e.id for e in events]).update(
        status=InboxStatus.DONE, processed_at=now, next_attempt_at=None
    )
    for event in events:
        event.status = InboxStatus.DONE
        event.processed_at = now
        event.next_attempt_at = None


async def handle_yclients(event: InboxEvent) -> list[LedgerResult]:
    """A salon's entity event: records become bookings and bonuses, clients get their name,
    phone and email refreshed; every other resource is kept in the inbox and left alone.
    An uninstalled salon's events are done without action."""
    payload = event.payload
    if event.company_id is not None:
        company = await Company.get_or_none(id=event.company_id)
    else:
        company = await Company.get_or_none(yclients_id=int(payload["company_id"]))
    if company is None or company.integration_status is IntegrationStatus.UNINSTALLED:
        log.info("inbox event %s: salon gone or uninstalled, nothing to do", event.id)
        return []
    resource, status, data = payload.get("resource"), payload.get("status"), payload.get("data")
    if resource == "record":
        if not isinstance(data, dict) or "id" not in data:
            raise ValueError("a record event without data.id")
        stats = await bookings.apply_record_by_id(company, data, deleted=status == "delete")
        return stats.changes
    if resource == "client" and status != "delete" and isinstance(data, dict):
        await _refresh_client(company, data)
    return []


async def _refresh_client(company: Company, data: dict[str, Any]) -> None:
    yclients_id = data.get("id")
    if not isinstance(yclients_id, int) or isinstance(yclients_id, bool):
        return
    client = await Client.filter(company_id=company.id, yclients_client_id=yclients_id).first()
    if client is None:
        return
    changed: list[str] = []
    name = data.get("name")
    if isinstance(name, str) and name.strip() and name.strip() != client.name:
        client.name = name.strip()[:255]
        changed.append("name")
    email = data.get("email")
    if isinstance(email, str) and email.strip() and email.strip().lower() != client.email:
        client.email = email.strip().lower()[:255]
        changed.append("email")
    raw_phone = data.get("phone")
    phone = normalize_phone(raw_phone) if isinstance(raw_phone, str | int) else None
    if (
        phone
        and phone != client.phone
        # A number another client of the salon holds stays theirs.
        and not await Client.filter(company_id=company.id, phone=phone)
        .exclude(id=client.id)
        .exists()
    ):
        client.phone = phone
        changed.append("phone")
    if not changed:
        return
    try:
        await client.save(update_fields=changed)
    except IntegrityError:
        # The phone was taken meanwhile; keep the rest.
        if "phone" not in changed or len(changed) == 1:
            return
        changed.remove("phone")
        await Client.filter(id=client.id).update(**{f: getattr(client, f) for f in changed})


def default_handlers() -> dict[str, Handler]:
    return {YCLIENTS: handle_yclients}
