"""POST /webhook/yclients/{hook_token} through the real app: inbox, worker, bookings, bonuses."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core import inbox, ledger
from core.inbox import Handler, InboxPolicy
from core.ledger import LedgerResult
from core.models import (
    Booking,
    BookingStatus,
    Company,
    InboxEvent,
    InboxStatus,
    IntegrationStatus,
    LedgerEntry,
    LedgerKind,
)
from core.notifications import BalanceNotice
from core.settings import Settings
from tests.fakes.yclients import YClientsEmulator
from web import yclients as yclients_webhook
from web.app import create_app
from web.ingest import WEBHOOK_MAX_BODY
from web.keys import INBOX_HANDLERS, INBOX_POLICY, NOTICE_FALLBACK, YCLIENTS_STORES

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
MSK = ZoneInfo("Europe/Moscow")
FAST = InboxPolicy(
    lease=timedelta(milliseconds=400),
    max_attempts=3,
    retry_base=timedelta(milliseconds=20),
    retry_max=timedelta(milliseconds=50),
    poll_interval=0.05,
)


class RecordingNotifier:
    def __init__(self) -> None:
        self.notices: list[BalanceNotice] = []

    async def notify(self, notices: Sequence[BalanceNotice]) -> None:
        self.notices.extend(notices)


class Salon:
    """One salon known to YClients (the emulator's state) and to us (a Company row)."""

    def __init__(self, client: TestClient[Any, Any], company: Company, yc: YClientsEmulator):
        self.client = client
        self.company = company
        self.yc = yc
        self.path = f"/webhook/yclients/{company.hook_token}"

    @property
    def yclients_id(self) -> int:
        return self.company.yclients_id

    def add_record(self, **fields: Any) -> dict[str, Any]:
        return self.yc.add_record(self.yclients_id, **fields)

    async def post(self, payload: Any) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(self.path, json=payload)
        return response.status, await response.json()


async def start(
    aiohttp_client: ClientFactory,
    settings: Settings,
    *,
    handlers: dict[str, Handler] | None = None,
    notifier: RecordingNotifier | None = None,
    policy: InboxPolicy = FAST,
) -> TestClient[Any, Any]:
    app = create_app(settings)
    app[INBOX_POLICY] = policy
    if handlers is not None:
        registry = inbox.Handlers()
        for source, handler in handlers.items():
            registry.register(source, handler)
        app[INBOX_HANDLERS] = registry
    if notifier is not None:
        app[NOTICE_FALLBACK] = notifier
    return await aiohttp_client(app)


async def open_salon(
    client: TestClient[Any, Any], yc: YClientsEmulator | None = None, yclients_id: int = 555
) -> Salon:
    yc = yc or YClientsEmulator()
    yc.now = datetime(2026, 11, 20, 10, 0, tzinfo=MSK)
    yc.add_company(yclients_id)
    company = await Company.create(
        yclients_id=yclients_id,
        hook_token=secrets.token_urlsafe(24),
        integration_status=IntegrationStatus.ACTIVE,
        accrual_percent=10,
    )
    return Salon(client, company, yc)


async def settled(within: float = 5.0) -> None:
    """Until no event is waiting for the worker."""
    deadline = time.monotonic() + within
    while await InboxEvent.filter(status=InboxStatus.PENDING).exists():
        assert time.monotonic() < deadline, "the inbox was not drained in time"
        await asyncio.sleep(0.02)


async def accruals() -> list[int]:
    return list(
        await LedgerEntry.filter(kind__in=[LedgerKind.ACCRUAL, LedgerKind.REVERSAL])
        .order_by("id")
        .values_list("amount", flat=True)
    )


async def test_duplicates_and_a_burst_of_four_make_one_booking_and_one_accrual(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    notifier = RecordingNotifier()
    salon = await open_salon(await start(aiohttp_client, settings, notifier=notifier))
    record = salon.add_record()
    created = salon.yc.webhook_for_record(record, "create")
    assert await salon.post(created) == (200, {"ok": True, "duplicate": False})
    assert await salon.post(created) == (200, {"ok": True, "duplicate": True})
    came = salon.yc.webhook_for_record(
        salon.yc.update_record(salon.yclients_id, record["id"], attendance=1)
    )
    burst = await asyncio.gather(*(salon.post(came) for _ in range(4)))
    assert sorted(body["duplicate"] for _, body in burst) == [False, True, True, True]
    await settled()
    assert await InboxEvent.all().count() == 2
    booking = await Booking.get(yclients_record_id=record["id"])
    assert booking.status is BookingStatus.COMPLETED
    assert await accruals() == [150]
    assert [(n.kind, n.amount, n.balance) for n in notifier.notices] == [
        (LedgerKind.ACCRUAL, 150, 150)
    ]


async def test_emulator_delivery_over_http_is_acted_on(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await start(aiohttp_client, settings)
    salon = await open_salon(client)
    record = salon.add_record(attendance=1)
    url = str(client.make_url(salon.path))
    status, body = await salon.yc.post_record_webhook(url, record, "create")
    assert (status, json.loads(body)) == (200, {"ok": True, "duplicate": False})
    await settled()
    assert await accruals() == [150]


@pytest.mark.parametrize(
    ("newer_offset", "older_offset"), [("+03:00", "+0300"), ("+0300", "+03:00")]
)
async def test_out_of_order_delivery_keeps_the_newest_state(
    aiohttp_client: ClientFactory, settings: Settings, newer_offset: str, older_offset: str
) -> None:
    salon = await open_salon(await start(aiohttp_client, settings))
    record = salon.add_record()
    rid = record["id"]

    def version(stamp: str, **changes: Any) -> dict[str, Any]:
        return salon.yc.webhook_for_record({**record, **changes, "last_change_date": stamp})

    # The newest state (came) arrives first, then older ones; 09:01:30Z is 12:01:30 Moscow.
    for payload in (
        version(f"2026-11-20T12:02:00{newer_offset}", attendance=1),
        version(f"2026-11-20T12:01:00{older_offset}", attendance=-1),
        version("2026-11-20T09:01:30+0000", attendance=0),
    ):
        assert (await salon.post(payload))[0] == 200
        await settled()
    booking = await Booking.get(yclients_record_id=rid)
    assert booking.status is BookingStatus.COMPLETED and booking.attendance == 1
    assert await accruals() == [150]
    # And a genuinely newer change still applies, whichever spelling it uses.
    newer = version(f"2026-11-20T12:03:00{older_offset}", attendance=-1)
    assert (await salon.post(newer))[0] == 200
    await settled()
    assert (await Booking.get(yclients_record_id=rid)).status is BookingStatus.NO_SHOW
    assert await accruals() == [150, -150]


async def test_a_delete_without_client_reverses_the_visits_bonus(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    notifier = RecordingNotifier()
    salon = await open_salon(await start(aiohttp_client, settings, notifier=notifier))
    record = salon.add_record(attendance=1)
    assert (await salon.post(salon.yc.webhook_for_record(record, "create")))[0] == 200
    await settled()
    deleted = dict(salon.yc.delete_record(salon.yclients_id, record["id"]))
    deleted.pop("client")
    assert (await salon.post(salon.yc.webhook_for_record(deleted, "delete")))[0] == 200
    # Some deletes carry nothing but the id; a second one changes nothing more.
    bare = {**salon.yc.webhook_for_record(deleted, "delete"), "data": {"id": record["id"]}}
    assert (await salon.post(bare))[0] == 200
    await settled()
    booking = await Booking.get(yclients_record_id=record["id"])
    assert booking.status is BookingStatus.CANCELLED and booking.cost == 1500
    assert booking.client_id is not None and await ledger.balance(booking.client_id) == 0
    assert await accruals() == [150, -150]
    assert [n.amount for n in notifier.notices] == [150, -150]


async def test_unknown_token_404_and_another_salons_company_403(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await start(aiohttp_client, settings)
    salon = await open_salon(client)
    other = await open_salon(client, yclients_id=777)
    payload = salon.yc.webhook_for_record(salon.add_record(attendance=1))
    for path in (
        "/webhook/yclients/" + secrets.token_urlsafe(24),
        "/webhook/yclients/" + salon.company.hook_token[:-1],
        "/webhook/yclients/" + "x" * 65,
        "/webhook/yclients/bad%00token",
        "/webhook/yclients/%D1%82%D0%BE%D0%BA%D0%B5%D0%BD",
    ):
        response = await client.post(path, json=payload)
        assert response.status == 404, path
    # A salon's URL with another salon's events: refused, nothing stored.
    status, body = await other.post(payload)
    assert status == 403 and "company_id" in body["error"]
    assert not await InboxEvent.exists()


BIG = json.dumps({"company_id": 555, "pad": "x" * WEBHOOK_MAX_BODY}).encode()


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "invalid JSON"),
        (b"{not json", 400, "invalid JSON"),
        (b"\xff\xfe\x00garbage", 400, "invalid JSON"),
        (b'{"company_id": NaN}', 400, "invalid JSON"),
        (b'{"company_id": 555, "x": 1e400}', 400, "invalid JSON"),
        (b"[" * 50 + b"]" * 50, 400, "nested deeper"),
        # 32 levels of objects and arrays are read (and then found wanting); 33 are not.
        (b'{"company_id": 555, "x": ' + b"[" * 31 + b"]" * 31 + b"}", 400, "resource"),
        (b'{"company_id": 555, "x": ' + b"[" * 32 + b"]" * 32 + b"}", 400, "nested deeper"),
        (b"[" * 100_000, 400, "JSON"),
        (b"[]", 400, "JSON object"),
        (b"{}", 400, "company_id"),
        (b'{"company_id": true}', 400, "company_id"),
        (b'{"company_id": "555"}', 400, "company_id"),
        (b'{"company_id": 555, "resource": 5}', 400, "resource"),
        (b'{"company_id": 555, "resource": "record", "resource_id": [1]}', 400, "resource_id"),
        (
            b'{"company_id": 555, "resource": "record", "resource_id": 1, "status": ["x"]}',
            400,
            "status",
        ),
        (
            b'{"company_id": 555, "resource": "record", "resource_id": 1, "status": "merge"}',
            400,
            "status",
        ),
        (
            b'{"company_id": 555, "resource": "record", "resource_id": 1, "status": "update",'
            b' "data": null}',
            400,
            "integer id",
        ),
        (
            b'{"company_id": 555, "resource": "record", "resource_id": 1, "status": "update",'
            b' "data": {"id": "1"}}',
            400,
            "integer id",
        ),
        (
            b'{"company_id": 555, "resource": "record", "resource_id": 1, "status": "update",'
            b' "data": {"id": 99999999999999999999}}',
            400,
            "integer id",
        ),
        (
            b'{"company_id": 555, "resource": "client", "resource_id": 1, "status": "update",'
            b' "data": [1]}',
            400,
            "data",
        ),
        (BIG, 413, "larger than"),
    ],
)
async def test_malformed_bodies_are_refused_with_a_reason(
    aiohttp_client: ClientFactory, settings: Settings, body: bytes, status: int, reason: str
) -> None:
    salon = await open_salon(await start(aiohttp_client, settings))
    response = await salon.client.post(
        salon.path, data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == status
    answer = await response.json()
    assert answer["ok"] is False and reason in answer["error"]
    assert not await InboxEvent.exists()


async def test_an_oversized_chunked_body_is_cut_off_with_413(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    salon = await open_salon(await start(aiohttp_client, settings))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"company_id": 555, "pad": "'
        for _ in range(WEBHOOK_MAX_BODY // 8192 + 1):
            yield b"x" * 8192
        yield b'"}'

    response = await salon.client.post(salon.path, data=chunks())
    assert response.status == 413
    assert not await InboxEvent.exists()


async def test_other_resources_and_odd_characters_are_stored_and_acknowledged(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    salon = await open_salon(await start(aiohttp_client, settings))
    service = {
        "company_id": salon.yclients_id,
        "resource": "service",
        "resource_id": "s-1",
        "status": "update",
        "data": {"title": "Стрижка\x00 \ud83d", "price": 1500.5},
    }
    assert await salon.post(service) == (200, {"ok": True, "duplicate": False})
    staff = {**service, "resource": "staff", "data": None, "status": "delete"}
    assert await salon.post(staff) == (200, {"ok": True, "duplicate": False})
    await settled()
    stored = await InboxEvent.get(dedupe_key__startswith=f"{salon.yclients_id}:service:")
    assert stored.status is InboxStatus.DONE
    assert stored.payload["data"]["title"] == "Стрижка\ufffd \ufffd"
    assert not await Booking.exists()


async def test_a_crash_mid_event_leaves_a_lease_and_the_restart_acts_once(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    entered = asyncio.Event()

    async def stuck(event: InboxEvent) -> Sequence[LedgerResult]:
        entered.set()
        await asyncio.Event().wait()  # the process dies here
        raise AssertionError("unreachable")

    # Long enough that the restart below finds the lease still held.
    policy = replace(FAST, lease=timedelta(seconds=1))
    first = await start(aiohttp_client, settings, handlers={"yclients": stuck}, policy=policy)
    salon = await open_salon(first)
    record = salon.add_record(attendance=1)
    # Both acknowledged, the second while the worker is stuck on the event for good: the answer
    # does not wait for the processing (the bounds only turn a hang into a failure).
    created = salon.post(salon.yc.webhook_for_record(record, "create"))
    assert (await asyncio.wait_for(created, 30))[0] == 200
    await asyncio.wait_for(entered.wait(), 5)
    repeat = salon.post(salon.yc.webhook_for_record(record, "create"))
    assert (await asyncio.wait_for(repeat, 30))[1]["duplicate"]
    await first.close()  # shutdown cancels the worker mid-event

    notifier = RecordingNotifier()
    second = await start(aiohttp_client, settings, notifier=notifier, policy=policy)
    held = await InboxEvent.get()
    assert held.status is InboxStatus.PENDING and held.attempts == 1
    assert not await Booking.exists()
    await settled()
    done = await InboxEvent.get()
    assert done.status is InboxStatus.DONE and done.attempts == 2
    assert await Booking.all().count() == 1
    assert await accruals() == [150]
    assert [n.amount for n in notifier.notices] == [150]
    await second.close()


async def test_dead_events_show_in_health_and_metrics(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    async def broken(event: InboxEvent) -> Sequence[LedgerResult]:
        raise RuntimeError("cannot handle this")

    client = await start(aiohttp_client, settings, handlers={"yclients": broken})
    salon = await open_salon(client)
    assert (await salon.post(salon.yc.webhook_for_record(salon.add_record())))[0] == 200
    await settled()
    dead = await InboxEvent.get()
    assert dead.status is InboxStatus.DEAD and dead.attempts == FAST.max_attempts
    assert dead.last_error == "RuntimeError: cannot handle this"

    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "degraded"
    assert body["inbox"] == {"pending": 0, "done": 0, "dead": 1}

    text = await (await client.get("/metrics")).text()
    assert 'salonbot_inbox_events{status="dead"} 1.0' in text
    assert 'salonbot_inbox_events{status="pending"} 0.0' in text
    assert 'salonbot_inbox_failures_total{source="yclients"} 3.0' in text
    assert 'salonbot_inbox_processed_total{outcome="retry",source="yclients"} 2.0' in text
    assert 'salonbot_inbox_processed_total{outcome="dead",source="yclients"} 1.0' in text
    assert 'salonbot_inbox_received_total{duplicate="false",source="yclients"} 1.0' in text
    assert salon.company.hook_token not in text


# --- random input: never a 500 ---

_text = st.text(st.characters() | st.characters(categories=["Cs"]) | st.just("\x00"), max_size=12)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _envelopes(yclients_id: int, *, valid: bool) -> st.SearchStrategy[Any]:
    """Events whose envelope is right (`valid`) or each field right or random; the data in
    them is random either way."""

    def field(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return right if valid else right | _json

    record_data = st.fixed_dictionaries(
        {"id": field(st.integers(min_value=1, max_value=2**63 - 1))},
        optional={
            "attendance": _json | st.sampled_from([-1, 0, 1, 2]),
            "services": _json,
            "client": _json,
            "comment": _json,
            "deleted": _json,
            "last_change_date": _json | st.just("2026-11-20T12:00:00+0300"),
        },
    )
    record = st.fixed_dictionaries(
        {"resource": st.just("record"), "resource_id": st.integers(), "data": record_data}
    )
    other = st.fixed_dictionaries(
        {
            "resource": field(st.sampled_from(["client", "service", "goods_operation"])),
            "resource_id": field(st.integers() | _text),
            "data": field(st.none() | st.dictionaries(_text, _json, max_size=4)),
        }
    )
    common = st.fixed_dictionaries(
        {
            "company_id": field(st.just(yclients_id)),
            "status": field(st.sampled_from(["create", "update", "delete"])),
        }
    )
    return st.builds(lambda a, b: {**a, **b}, common, record | other)


@pytest.fixture
async def salon_app(aiohttp_client: ClientFactory, settings: Settings) -> Salon:
    return await open_salon(await start(aiohttp_client, settings))


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_bodies_never_get_a_500(salon_app: Salon, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["valid", "envelope", "json", "bytes"]))
    if kind == "bytes":
        body = data.draw(st.binary(max_size=200))
    elif kind == "json":
        body = json.dumps(data.draw(_json)).encode()
    else:
        value = data.draw(_envelopes(salon_app.yclients_id, valid=kind == "valid"))
        body = json.dumps(value).encode()
    response = await salon_app.client.post(
        salon_app.path, data=body, headers={"Content-Type": "application/json"}
    )
    event(f"{kind}: {response.status}")  # the spread shows with --hypothesis-show-statistics
    assert response.status < 500, (response.status, await response.text())
    assert response.status in {200, 400, 403}


async def test_a_malformed_body_to_an_unknown_url_is_404_and_to_a_salons_url_400(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    salon = await open_salon(await start(aiohttp_client, settings))
    headers = {"Content-Type": "application/json"}
    unknown = "/webhook/yclients/" + secrets.token_urlsafe(24)
    assert (await salon.client.post(unknown, data=b"{not json", headers=headers)).status == 404
    assert (await salon.client.post(salon.path, data=b"{not json", headers=headers)).status == 400


@pytest.mark.parametrize(
    ("data", "stored"),
    [
        # Raw UTF-8 and odd spacing: PostgreSQL keeps the body as it came.
        (
            b'{"title":  "\xd0\xa1\xd1\x82\xd1\x80\xd0\xb8\xd0\xb6\xd0\xba\xd0\xb0", "n": 1.50}',
            {"title": "Стрижка", "n": 1.5},
        ),
        # Escapes: the parsed value is serialised instead (a NUL repaired).
        (b'{"title": "\\u0421\\u0442\\u0000"}', {"title": "Ст\ufffd"}),
        # A number jsonb's numeric cannot hold (Python reads it as 0.0): serialised instead.
        (b'{"tiny": 1e-20000}', {"tiny": 0.0}),
    ],
)
async def test_an_event_is_stored_as_parsed_whatever_its_spelling(
    aiohttp_client: ClientFactory, settings: Settings, data: bytes, stored: dict[str, Any]
) -> None:
    salon = await open_salon(await start(aiohttp_client, settings))
    body = (
        b'{"company_id": %d, "resource": "service", "resource_id": 7, "status": "update",'
        b' "data": %s}' % (salon.yclients_id, data)
    )
    response = await salon.client.post(
        salon.path, data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 200, await response.text()
    event = await InboxEvent.get(source="yclients")
    assert event.payload["data"] == stored and event.payload["resource_id"] == 7


async def test_stores_are_admitted_a_few_at_a_time_in_arrival_order(
    aiohttp_client: ClientFactory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    salon = await open_salon(await start(aiohttp_client, settings))
    gate = salon.client.app[YCLIENTS_STORES]
    real_store, real_acquire = inbox.store, gate.acquire
    in_flight, most, arrived, order = 0, 0, 0, []
    arrival, release = asyncio.Event(), asyncio.Event()

    async def counting_acquire() -> bool:
        nonlocal arrived
        arrived += 1
        arrival.set()
        return await real_acquire()

    async def held_store(source: str, key: Any, event: dict[str, Any], **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        order.append(event["resource_id"])
        await release.wait()
        in_flight -= 1
        return await real_store(source, key, event, **kwargs)

    monkeypatch.setattr(gate, "acquire", counting_acquire)
    monkeypatch.setattr(inbox, "store", held_store)
    payloads = [salon.yc.webhook_for_record(salon.add_record(attendance=0)) for _ in range(12)]
    answers = []
    for sent, payload in enumerate(payloads, start=1):
        # The next request starts only once this one has reached the gate: arrival order is
        # the order sent, whatever the machine's load.
        answers.append(asyncio.ensure_future(salon.post(payload)))
        while arrived < sent:
            arrival.clear()
            await asyncio.wait_for(arrival.wait(), timeout=30)
    assert in_flight == yclients_webhook.STORES_IN_FLIGHT
    release.set()
    assert [status for status, _ in await asyncio.gather(*answers)] == [200] * 12
    assert most == yclients_webhook.STORES_IN_FLIGHT
    assert order == [p["resource_id"] for p in payloads]


async def test_odd_characters_outside_data_are_stored_and_deduplicated(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    salon = await open_salon(await start(aiohttp_client, settings))
    body = (
        b'{"company_id": %d, "resource": "serv\\u0000ice", "resource_id": "\\ud800",'
        b' "status": "update", "data": {"last_change_date": "\\u0000"}}' % salon.yclients_id
    )
    headers = {"Content-Type": "application/json"}
    for duplicate in (False, True):
        response = await salon.client.post(salon.path, data=body, headers=headers)
        assert response.status == 200, await response.text()
        assert (await response.json())["duplicate"] is duplicate
    event = await InboxEvent.get(source="yclients")
    assert event.payload["resource"] == "serv\ufffdice"
    assert event.payload["resource_id"] == "\ufffd"
    assert "\x00" not in event.dedupe_key
