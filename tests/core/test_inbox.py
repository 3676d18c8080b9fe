from __future__ import annotations

import ast
import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core import bookings, inbox, ledger
from core.bookings import apply as bookings_apply
from core.clients import create_client
from core.inbox import InboxPolicy
from core.ledger import LedgerResult
from core.models import (
    Booking,
    BookingStatus,
    Client,
    Company,
    InboxEvent,
    InboxStatus,
    IntegrationStatus,
    LedgerEntry,
)
from core.settings import Settings
from web.app import create_app
from web.keys import INBOX_HANDLERS

POLICY = InboxPolicy(
    lease=timedelta(seconds=60),
    max_attempts=3,
    retry_base=timedelta(seconds=10),
    retry_max=timedelta(seconds=25),
    batch_size=5,
)


def record(record_id: int = 1, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": record_id,
        "company_id": 555,
        "staff": {"id": 7, "name": "Ольга"},
        "services": [{"id": 1, "title": "Стрижка", "cost": 2000, "amount": 1}],
        "client": {"id": 900, "name": "Анна", "phone": "79991234567", "email": "a@x.ru"},
        "datetime": "2026-11-20T12:00:00+03:00",
        "comment": "",
        "attendance": 0,
        "deleted": False,
        "last_change_date": "2026-11-20T10:00:00+0300",
    }
    base.update(changes)
    return base


def event(data: Any, status: str = "update", resource: str = "record") -> dict[str, Any]:
    resource_id = data.get("id", 0) if isinstance(data, dict) else 0
    return {
        "company_id": 555,
        "resource": resource,
        "resource_id": resource_id,
        "status": status,
        "data": data,
    }


def yclients_handlers() -> inbox.Handlers:
    handlers = inbox.Handlers()
    bookings.register(handlers)
    return handlers


def only(source: str, handler: inbox.Handler) -> inbox.Handlers:
    handlers = inbox.Handlers()
    handlers.register(source, handler)
    return handlers


async def salon(**fields: Any) -> Company:
    return await Company.create(
        yclients_id=555,
        hook_token="hook",
        accrual_percent=10,
        integration_status=IntegrationStatus.ACTIVE,
        **fields,
    )


async def put(company: Company, payload: dict[str, Any]) -> InboxEvent:
    stored = await inbox.store(
        bookings.YCLIENTS, bookings.dedupe_key_for_yclients(payload), payload, company.id
    )
    assert stored.created and stored.event_id is not None
    return await InboxEvent.get(id=stored.event_id)


async def run_all(policy: InboxPolicy = POLICY) -> list[LedgerResult]:
    """Claim and process until nothing is due; the ledger results, in order."""
    changes: list[LedgerResult] = []
    while events := await inbox.claim(policy):
        for claimed in events:
            changes.extend((await inbox.process(claimed, yclients_handlers(), policy)).changes)
    return changes


# --- dedupe keys ---


def test_identical_deliveries_share_a_key_and_any_real_change_gets_its_own() -> None:
    burst = [event(record(attendance=1)) for _ in range(4)]
    assert len({bookings.dedupe_key_for_yclients(e) for e in burst}) == 1
    key = bookings.dedupe_key_for_yclients(burst[0])
    assert key.startswith("555:record:1:update:2026-11-20T07:00:00+00:00:")
    # Key order inside data does not matter; the content does, even within the same second.
    shuffled = event(dict(reversed(list(record(attendance=1).items()))))
    assert bookings.dedupe_key_for_yclients(shuffled) == key
    assert bookings.dedupe_key_for_yclients(event(record(attendance=-1))) != key
    assert bookings.dedupe_key_for_yclients(event(record(attendance=1), "delete")) != key


def test_dedupe_key_without_change_date_hashes_data_and_stays_short() -> None:
    bare = bookings.dedupe_key_for_yclients(event({"id": 5}, "delete"))
    assert bare.startswith("555:record:5:delete:-:")
    assert bare == bookings.dedupe_key_for_yclients(event({"id": 5}, "delete"))
    assert bare != bookings.dedupe_key_for_yclients(event({"id": 6}, "delete"))
    # The same instant spelled two ways keeps one stamp.
    colon = bookings.dedupe_key_for_yclients(
        event({"id": 5, "last_change_date": "2026-11-20T10:00:00+03:00"})
    )
    plain = bookings.dedupe_key_for_yclients(
        event({"id": 5, "last_change_date": "2026-11-20T10:00:00+0300"})
    )
    assert colon.split(":")[4:7] == plain.split(":")[4:7]
    huge = bookings.dedupe_key_for_yclients(event(None, resource="x" * 1000))
    assert huge.startswith("sha256:") and len(huge) <= 255


def test_storable_replaces_what_postgres_cannot_keep() -> None:
    assert inbox.storable({"a\x00": ["b\ud800c", 1, None]}) == {"a\ufffd": ["b\ufffdc", 1, None]}
    untouched = {"name": "Анна 😀", "n": 1.5}
    assert inbox.storable(untouched) == untouched


# --- store and claim ---


async def test_a_duplicate_is_stored_once_even_when_racing(orm: str) -> None:
    company = await salon()
    payload = event(record(attendance=1))
    key = bookings.dedupe_key_for_yclients(payload)
    results = await asyncio.gather(
        *(inbox.store(bookings.YCLIENTS, key, payload, company.id) for _ in range(4))
    )
    assert sorted(stored.created for stored in results) == [False, False, False, True]
    assert [stored.company_id for stored in results] == [company.id] * 4
    assert await InboxEvent.all().count() == 1
    # The same key from another source is another event.
    assert (await inbox.store("whatsapp", key, payload, company.id)).created


async def test_claim_leases_events_until_the_lease_runs_out(orm: str) -> None:
    company = await salon()
    stored = await put(company, event(record()))
    now = datetime.now(UTC) + timedelta(hours=1)
    (claimed,) = await inbox.claim(POLICY, now=now)
    assert claimed.id == stored.id and claimed.attempts == 1
    assert await inbox.claim(POLICY, now=now + timedelta(seconds=59)) == []
    (again,) = await inbox.claim(POLICY, now=now + timedelta(seconds=61))
    assert again.id == stored.id and again.attempts == 2
    row = await InboxEvent.get(id=stored.id)
    assert row.attempts == 2 and row.status is InboxStatus.PENDING


async def test_concurrent_claims_never_share_an_event(orm: str) -> None:
    company = await salon()
    for i in range(1, 13):
        await put(company, event(record(i)))
    batches = await asyncio.gather(*(inbox.claim(POLICY) for _ in range(4)))
    ids = [e.id for batch in batches for e in batch]
    assert len(ids) == len(set(ids)) == 12
    assert all(len(batch) <= POLICY.batch_size for batch in batches)


async def test_failures_back_off_exponentially_then_the_event_is_dead(orm: str) -> None:
    company = await salon()
    stored = await put(company, event(record()))
    now = datetime.now(UTC) + timedelta(hours=1)
    delays = []
    for _ in range(POLICY.max_attempts):
        (claimed,) = await inbox.claim(POLICY, now=now)
        status = await inbox.mark_failed(claimed, "boom", POLICY, now=now)
        if status is InboxStatus.PENDING:
            assert claimed.next_attempt_at is not None
            delays.append(claimed.next_attempt_at - now)
            now = claimed.next_attempt_at
    assert delays == [timedelta(seconds=10), timedelta(seconds=20)]
    assert status is InboxStatus.DEAD
    row = await InboxEvent.get(id=stored.id)
    assert row.status is InboxStatus.DEAD and row.attempts == 3 and row.last_error == "boom"
    assert await inbox.claim(POLICY, now=now + timedelta(days=1)) == []
    assert await inbox.counts() == {"pending": 0, "done": 0, "dead": 1}
    assert POLICY.retry_delay(10) == timedelta(seconds=25)


async def test_process_records_failures_and_gives_up_on_events_that_never_finish(
    orm: str,
) -> None:
    company = await salon()
    await put(company, event(record(1)))
    await put(company, event(record(2)))

    async def broken(stored: InboxEvent) -> Sequence[LedgerResult]:
        raise RuntimeError("handler bug")

    first, second = await inbox.claim(POLICY)
    outcome = await inbox.process(first, only(bookings.YCLIENTS, broken), POLICY)
    assert outcome.status is InboxStatus.PENDING and outcome.error == "RuntimeError: handler bug"
    outcome = await inbox.process(second, inbox.Handlers(), POLICY)
    assert outcome.error is not None and "no handler" in outcome.error
    # Leases that kept expiring (a worker dying on it) count as attempts too.
    second.attempts = POLICY.max_attempts + 1
    outcome = await inbox.process(second, yclients_handlers(), POLICY)
    assert outcome.status is InboxStatus.DEAD
    assert not await Booking.filter(yclients_record_id=2).exists()


# --- the YClients handler ---


async def test_record_events_apply_once_and_a_bare_delete_reverses(orm: str) -> None:
    company = await salon()
    await put(company, event(record(attendance=1), "create"))
    changes = await run_all()
    assert [c.amount for c in changes] == [200]
    booking = await Booking.get(yclients_record_id=1)
    assert booking.status is BookingStatus.COMPLETED and booking.client_id is not None

    await put(company, event({"id": 1}, "delete"))
    changes = await run_all()
    assert [c.amount for c in changes] == [-200]
    booking = await Booking.get(yclients_record_id=1)
    assert booking.status is BookingStatus.CANCELLED and booking.deleted
    # What the bare delete did not carry is kept.
    assert booking.cost == 2000 and booking.staff_name == "Ольга"
    assert booking.visit_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert booking.attendance == 1
    assert booking.client_id is not None and await ledger.balance(booking.client_id) == 0
    assert await inbox.counts() == {"pending": 0, "done": 2, "dead": 0}


async def test_uninstalled_salon_and_other_resources_are_done_without_action(orm: str) -> None:
    company = await salon()
    await put(company, event({"id": 3, "title": "Стрижка"}, resource="service"))
    await put(company, event(None, "delete", resource="staff"))
    await run_all()
    company.integration_status = IntegrationStatus.UNINSTALLED
    await company.save()
    await put(company, event(record(attendance=1)))
    assert await run_all() == []
    assert await inbox.counts() == {"pending": 0, "done": 3, "dead": 0}
    assert not await Booking.exists() and not await LedgerEntry.exists()


async def test_client_events_refresh_name_email_and_a_free_phone(orm: str) -> None:
    company = await salon()
    anna = (await create_client(company, phone="+79991234567", yclients_client_id=900)).client
    await create_client(company, phone="+79990000002")
    await put(
        company,
        event(
            {"id": 900, "name": "Анна К.", "phone": "+7 999 000-00-02", "email": "ANNA@x.ru"},
            resource="client",
        ),
    )
    await run_all()
    anna = await Client.get(id=anna.id)
    # The number belongs to another client, so it stays; the rest changes.
    assert (anna.name, anna.email, anna.phone) == ("Анна К.", "anna@x.ru", "+79991234567")
    await put(company, event({"id": 900, "phone": 79993334455}, resource="client"))
    await put(company, event({"id": 12345, "name": "Никто"}, resource="client"))
    await run_all()
    assert (await Client.get(id=anna.id)).phone == "+79993334455"
    assert await Client.filter(company_id=company.id).count() == 2


@pytest.mark.parametrize("status", ["pending", "done", "dead"])
async def test_counts_report_every_status(orm: str, status: str) -> None:
    company = await salon()
    stored = await put(company, event(record()))
    stored.status = InboxStatus(status)
    await stored.save()
    counts = await inbox.counts()
    assert counts == {s: int(s == status) for s in ("pending", "done", "dead")}


# --- taking record events together ---


async def run_together(policy: InboxPolicy = POLICY) -> list[inbox.Outcome]:
    """Claim and process like the worker does, through process_all."""
    outcomes: list[inbox.Outcome] = []
    while events := await inbox.claim(policy):
        async for outcome in inbox.process_all(events, yclients_handlers(), policy):
            outcomes.append(outcome)
    return outcomes


async def test_a_run_of_record_events_is_one_batch_per_wave_with_one_by_one_results(
    orm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    company = await salon()
    calls: list[list[int]] = []
    apply = bookings_apply.apply_records

    async def counting(company: Company, records: Sequence[dict[str, Any]]) -> Any:
        calls.append([r["id"] for r in records])
        return await apply(company, records)

    monkeypatch.setattr(bookings_apply, "apply_records", counting)
    stamp = "2026-11-20T1{}:00:00+0300"
    await put(company, event(record(1, last_change_date=stamp.format(1)), "create"))
    await put(company, event(record(2, attendance=1, last_change_date=stamp.format(1))))
    # Record 1 again: its second event starts a new wave, after the first.
    await put(company, event(record(1, attendance=1, last_change_date=stamp.format(2))))
    await put(company, event({"id": 2}, "delete"))
    outcomes = await run_together()
    assert calls == [[1, 2], [1, 2]]
    assert [o.status for o in outcomes] == [InboxStatus.DONE] * 4
    assert [[c.amount for c in o.changes] for o in outcomes] == [[], [200], [], [200, -200]]
    assert await inbox.counts() == {"pending": 0, "done": 4, "dead": 0}
    rows = await InboxEvent.all().order_by("id")
    assert all(r.processed_at is not None and r.next_attempt_at is None for r in rows)
    assert [e.amount for e in await LedgerEntry.all().order_by("id")] == [200, 200, -200]
    one = await Booking.get(yclients_record_id=1)
    assert one.status is BookingStatus.COMPLETED and one.client_id is not None
    assert await ledger.balance(one.client_id) == 200


async def test_a_failing_batch_goes_event_by_event_and_only_the_bad_one_fails(
    orm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    company = await salon()
    await put(company, event(record(1, attendance=1)))
    await put(company, event(record(2, attendance=1, datetime="not a date at all")))
    await put(company, event(record(3, attendance=1)))
    apply = bookings_apply.apply_records

    async def picky(company: Company, records: Sequence[dict[str, Any]], **options: Any) -> Any:
        if any(r["id"] == 2 for r in records):
            raise ValueError("record 2 is broken")
        return await apply(company, records, **options)

    monkeypatch.setattr(bookings_apply, "apply_records", picky)
    outcomes = await run_together()
    assert [(o.event.payload["data"]["id"], o.status) for o in outcomes] == [
        (1, InboxStatus.DONE),
        (2, InboxStatus.PENDING),
        (3, InboxStatus.DONE),
    ]
    assert outcomes[1].error == "ValueError: record 2 is broken"
    assert [c.amount for o in outcomes for c in o.changes] == [200, 200]
    assert await Booking.filter(yclients_record_id__in=[1, 3]).count() == 2


async def test_other_events_keep_their_place_and_custom_handlers_go_one_by_one(
    orm: str,
) -> None:
    company = await salon()
    anna = (await create_client(company, phone="+79991234567", yclients_client_id=900)).client
    await put(company, event({"id": 900, "name": "Анна К."}, resource="client"))
    await put(company, event(record(1, attendance=1)))
    outcomes = await run_together()
    assert [o.event.payload["resource"] for o in outcomes] == ["client", "record"]
    assert (await Client.get(id=anna.id)).name == "Анна К."
    assert (await Booking.get(yclients_record_id=1)).client_id == anna.id

    seen: list[int] = []

    async def mine(stored: InboxEvent) -> Sequence[LedgerResult]:
        seen.append(stored.payload["data"]["id"])
        return []

    await put(company, event(record(5)))
    await put(company, event(record(6)))
    events = await inbox.claim(POLICY)
    done = [o async for o in inbox.process_all(events, only(bookings.YCLIENTS, mine), POLICY)]
    assert seen == [5, 6] and [o.status for o in done] == [InboxStatus.DONE] * 2
    assert not await Booking.filter(yclients_record_id__in=[5, 6]).exists()


async def test_process_all_starts_nothing_once_told_to_stop(orm: str) -> None:
    company = await salon()
    for i in (1, 2):
        await put(company, event(record(i)))
    events = await inbox.claim(POLICY)
    assert [
        o async for o in inbox.process_all(events, yclients_handlers(), POLICY, stop=lambda: True)
    ] == []
    assert await inbox.counts() == {"pending": 2, "done": 0, "dead": 0}
    assert not await Booking.exists()


async def test_claim_takes_the_earliest_due_first_and_ties_in_id_order(orm: str) -> None:
    company = await salon()
    stored = [await put(company, event(record(i))) for i in range(1, 5)]
    same = datetime(2026, 1, 1, tzinfo=UTC)
    await InboxEvent.filter(id__in=[stored[2].id, stored[3].id]).update(next_attempt_at=same)
    await InboxEvent.filter(id=stored[0].id).update(next_attempt_at=same - timedelta(seconds=1))
    claimed = await inbox.claim(replace(POLICY, batch_size=3))
    assert [e.id for e in claimed] == [stored[0].id, stored[2].id, stored[3].id]


def test_storable_returns_a_clean_value_as_it_is_and_reads_escapes_right() -> None:
    clean = {"name": "Анна 😀", "n": [1, 2.5, None]}
    assert inbox.storable(clean) is clean
    # Text that spells out the escape looks like a NUL to the quick check; the slow one knows.
    spelled = {"note": "a \\u0000 spelled out"}
    assert inbox.storable(spelled) == {"note": "a \\u0000 spelled out"}
    assert inbox.storable({"k": ["\x00"]}) == {"k": ["\ufffd"]}
    assert inbox.storable({"\ud800": 1}) == {"\ufffd": 1}
    assert inbox.storable({"n": {1, 2}}) == {"n": {1, 2}}  # not JSON: left to the caller


# --- the registry ---


async def test_a_source_is_registered_once() -> None:
    handlers = yclients_handlers()
    with pytest.raises(ValueError, match="registered already"):
        handlers.register(bookings.YCLIENTS, bookings.handle_yclients)
    with pytest.raises(ValueError, match="registered already"):
        bookings.register(handlers)
    assert bookings.YCLIENTS in handlers and "whatsapp" not in handlers


def test_the_app_registers_every_source_once(settings: Settings) -> None:
    """The composition root's registry: one handler per source, the YClients one with its
    batch (the `whatsapp` handler was once registered twice, the second winning silently)."""
    handlers = create_app(settings)[INBOX_HANDLERS]
    assert all(source in handlers for source in ("yclients", "marketplace", "whatsapp"))
    assert handlers.batch("yclients") is bookings.RECORD_BATCH
    assert handlers.batch("whatsapp") is None and handlers.batch("marketplace") is None


def test_the_inbox_imports_no_feature() -> None:
    """core/inbox.py is plumbing: of core it imports only the ledger's result type, the models
    and the salon lookup, never a feature (bookings, onboarding, whatsapp, ...)."""
    tree = ast.parse(Path(inbox.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "core":
            imported.update(f"core.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert {m for m in imported if m.startswith("core")} == {
        "core.companies",
        "core.ledger",
        "core.models",
    }
