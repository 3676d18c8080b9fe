"""The YClients client against the loopback emulator (no database)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from core.settings import Settings
from core.yclients import (
    ACCEPT,
    AlreadyInstalled,
    BadResponse,
    Forbidden,
    NotFound,
    RateLimited,
    RateLimiter,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    YClientsClient,
    YClientsError,
    parse_yclients_datetime,
)
from tests.fakes.yclients import ALREADY_INSTALLED, YClientsEmulator

MSK = ZoneInfo("Europe/Moscow")
APP_ID = 777


@pytest.fixture
async def yc() -> AsyncIterator[YClientsEmulator]:
    async with YClientsEmulator() as emulator:
        yield emulator


def make_client(yc: YClientsEmulator, **options: object) -> YClientsClient:
    defaults: dict[str, object] = {
        "rate_limit": None,
        "backoff_base": 0.001,
        "backoff_max": 0.01,
        "timeout": 2.0,
    }
    defaults.update(options)
    user = defaults.pop("user_token", yc.user_token)
    return YClientsClient(yc.url, yc.partner_token, user, **defaults)  # type: ignore[arg-type]


@pytest.fixture
async def client(yc: YClientsEmulator) -> AsyncIterator[YClientsClient]:
    async with make_client(yc) as c:
        yield c


# --- headers and envelope ---


async def test_partner_only_header_for_company(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    company = yc.add_company(101, title="Ромашка")

    got = await client.company(101)

    assert got["title"] == "Ромашка"
    assert got["bookforms"] == company["bookforms"]
    seen = yc.requests[-1]
    assert seen.headers["Authorization"] == f"Bearer {yc.partner_token}"
    assert seen.headers["Accept"] == ACCEPT
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.query["showBookforms"] == "1"


async def test_partner_and_user_header_for_records(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    yc.add_record(101)

    await client.records(101)

    expected = f"Bearer {yc.partner_token}, User {yc.user_token}"
    assert yc.requests[-1].headers["Authorization"] == expected


async def test_envelope_unwrapped_for_lists_and_single_objects(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    yc.add_staff(101, name="Ольга")
    yc.add_service(101, title="Маникюр")
    record = yc.add_record(101, comment="код AB12")

    assert [s["name"] for s in await client.staff(101)] == ["Ольга"]
    assert [s["title"] for s in await client.services(101)] == ["Маникюр"]
    got = await client.record(101, record["id"])
    assert got["comment"] == "код AB12"
    assert got["staff"]["name"] == "Ольга"
    assert "success" not in got


# --- errors ---


async def test_wrong_partner_token_is_unauthorized_with_advice(yc: YClientsEmulator) -> None:
    yc.add_company(101)
    async with make_client(yc) as client:
        client._partner_token = "not-the-token"  # a revoked token, without rebuilding
        with pytest.raises(Unauthorized) as err:
            await client.company(101)
    text = str(err.value)
    assert "YCLIENTS_PARTNER_TOKEN" in text and "spaces" in text
    assert "Partner authentication failed" in text
    assert err.value.status == 401


async def test_missing_user_token_is_forbidden_with_advice(yc: YClientsEmulator) -> None:
    yc.add_record(101)
    async with make_client(yc, user_token=None) as client:
        with pytest.raises(Forbidden) as err:
            await client.records(101)
    assert "lacks the right to read records" in str(err.value)
    assert "rights in YClients settings" in str(err.value)
    assert "Нет прав на просмотр записей" in str(err.value)
    assert yc.requests[-1].headers["Authorization"] == f"Bearer {yc.partner_token}"


async def test_unknown_salon_is_not_found(client: YClientsClient) -> None:
    with pytest.raises(NotFound) as err:
        await client.company(404404)
    assert "check the salon id" in str(err.value)
    assert err.value.api_message == "Филиал не найден"


@pytest.mark.parametrize(
    ("status", "error", "advice"),
    [
        (400, ValidationFailed, "rejected the request data"),
        (422, ValidationFailed, "rejected the request data"),
        (429, RateLimited, "YCLIENTS_RATE_LIMIT"),
        (500, Unavailable, "retry later"),
        (503, Unavailable, "retry later"),
    ],
)
async def test_status_maps_to_error_with_advice_and_api_message(
    yc: YClientsEmulator, status: int, error: type[YClientsError], advice: str
) -> None:
    yc.add_company(101)
    yc.fail_next(1, status, message="поле title обязательно")
    async with make_client(yc, max_retries=0) as client:
        with pytest.raises(error) as err:
            await client.company(101)
    assert advice in str(err.value)
    assert err.value.api_message == "поле title обязательно"
    assert err.value.status == status


async def test_errors_form_of_the_failure_body(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    yc.add_company(101)
    yc.fail_next(1, 401, message="Необходима авторизация", errors_form=True)
    with pytest.raises(Unauthorized) as err:
        await client.company(101)
    assert err.value.api_message == "Необходима авторизация"


def _handler_returning(status: int, body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body))


async def test_errors_inside_a_200_answer_and_missing_envelope() -> None:
    failing = _handler_returning(200, b'{"errors": {"code": 403, "message": "no rights"}}')
    async with YClientsClient("http://yc.test", "p", transport=failing, rate_limit=None) as c:
        with pytest.raises(Forbidden, match="no rights"):
            await c.staff(1)
    bare = _handler_returning(200, b'{"id": 1}')
    async with YClientsClient("http://yc.test", "p", transport=bare, rate_limit=None) as c:
        with pytest.raises(BadResponse, match="envelope"):
            await c.company(1)


async def test_malformed_json_is_bad_response_and_not_retried(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    yc.add_company(101)
    yc.malformed_next(1)
    with pytest.raises(BadResponse) as err:
        await client.company(101)
    assert "YCLIENTS_API_URL" in str(err.value)
    assert yc.calls["/api/v1/company/101"] == 1


async def test_timeout_and_refused_connection_are_unavailable(yc: YClientsEmulator) -> None:
    yc.add_company(101)
    yc.slow(0.3, n=1)
    async with make_client(yc, timeout=0.1, max_retries=0) as client:
        with pytest.raises(Unavailable, match=r"no answer within 0\.1 s"):
            await client.company(101)
    async with YClientsClient("http://127.0.0.1:9", "p", max_retries=0) as client:
        with pytest.raises(Unavailable, match="cannot connect"):
            await client.company(101)


# --- retries ---


@pytest.mark.parametrize("status", [429, 500, 502])
async def test_get_is_retried_then_succeeds(
    yc: YClientsEmulator, client: YClientsClient, status: int
) -> None:
    yc.add_company(101, title="Ромашка")
    yc.fail_next(2, status)

    assert (await client.company(101))["title"] == "Ромашка"
    assert yc.calls["/api/v1/company/101"] == 3


async def test_get_is_retried_after_a_timeout(yc: YClientsEmulator) -> None:
    yc.add_company(101)
    yc.slow(0.3, n=1)
    async with make_client(yc, timeout=0.2) as client:
        assert (await client.company(101))["id"] == 101
    assert yc.calls["/api/v1/company/101"] == 2


async def test_retries_give_up_with_the_last_error(yc: YClientsEmulator) -> None:
    yc.add_company(101)
    yc.fail_next(10, 500)
    async with make_client(yc, max_retries=2) as client:
        with pytest.raises(Unavailable):
            await client.company(101)
    assert yc.calls["/api/v1/company/101"] == 3


@pytest.mark.parametrize("status", [429, 500])
async def test_post_is_never_retried(
    yc: YClientsEmulator, client: YClientsClient, status: int
) -> None:
    yc.fail_next(1, status)
    with pytest.raises((RateLimited, Unavailable)):
        await client.marketplace_callback_redirect(101, APP_ID, "key", ["https://h/1"])
    assert yc.calls["/marketplace/partner/callback/redirect"] == 1


async def test_post_timeout_is_not_retried(yc: YClientsEmulator) -> None:
    yc.slow(0.3, n=1)
    async with make_client(yc, timeout=0.1) as client:
        with pytest.raises(Unavailable):
            await client.marketplace_callback_redirect(101, APP_ID, "key", ["https://h/1"])
    assert yc.calls["/marketplace/partner/callback/redirect"] == 1


# --- records ---


async def test_paging_stops_at_the_first_short_page(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    for _ in range(7):
        yc.add_record(101)

    pages = [page async for page in client.iter_record_pages(101, count=3)]

    assert [len(p) for p in pages] == [3, 3, 1]
    assert yc.calls["/api/v1/records/101"] == 3
    assert [r.query["page"] for r in yc.requests] == ["1", "2", "3"]
    assert {r.query["count"] for r in yc.requests} == {"3"}


async def test_paging_a_multiple_of_count_ends_on_an_empty_page(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    ids = {yc.add_record(101)["id"] for _ in range(6)}

    records = await client.records(101, count=3)

    assert {r["id"] for r in records} == ids
    assert yc.calls["/api/v1/records/101"] == 3


async def test_paging_refuses_a_server_that_ignores_page() -> None:
    body = b'{"success": true, "data": [{"id": 1}, {"id": 2}], "meta": {"total_count": 9}}'
    transport = _handler_returning(200, body)
    async with YClientsClient("http://yc.test", "p", transport=transport, rate_limit=None) as c:
        with pytest.raises(BadResponse, match="ignored the page parameter"):
            await c.records(1, count=2)


async def test_changed_after_and_with_deleted(yc: YClientsEmulator, client: YClientsClient) -> None:
    yc.now = datetime(2026, 11, 20, 12, 0, tzinfo=MSK)
    yc.add_record(101)
    kept = yc.add_record(101)
    gone = yc.add_record(101)
    yc.now = datetime(2026, 11, 20, 15, 0, tzinfo=MSK)
    yc.update_record(101, kept["id"], attendance=1)
    yc.delete_record(101, gone["id"])
    assert kept["last_change_date"] == "2026-11-20T15:00:00+0300"

    # A watermark read back from the database comes in UTC: 12:30 UTC is 15:30 in Moscow.
    since = datetime(2026, 11, 20, 11, 30, tzinfo=UTC)
    changed = await client.records(101, changed_after=since, timezone="Europe/Moscow")
    assert [r["id"] for r in changed] == [kept["id"]]
    assert yc.requests[-1].query["changed_after"] == "2026-11-20T14:30:00"
    assert "with_deleted" not in yc.requests[-1].query

    with_deleted = await client.records(101, changed_after=since, timezone=MSK, with_deleted=True)
    assert {r["id"]: r["deleted"] for r in with_deleted} == {kept["id"]: False, gone["id"]: True}
    assert yc.requests[-1].query["with_deleted"] == "1"
    # A naive moment is salon-local time and goes out as it is.
    local = await client.records(101, changed_after=datetime(2026, 11, 20, 14, 59))
    assert [r["id"] for r in local] == [kept["id"]]
    assert len(await client.records(101, with_deleted=True)) == 3


async def test_visit_date_filter(yc: YClientsEmulator, client: YClientsClient) -> None:
    early = yc.add_record(101, datetime=datetime(2026, 12, 1, 10, 0))
    late = yc.add_record(101, datetime=datetime(2026, 12, 5, 23, 30))

    got = await client.records(101, start_date=date(2026, 12, 2), end_date="2026-12-05")

    assert [r["id"] for r in got] == [late["id"]]
    assert early["date"] == "2026-12-01 10:00:00"
    assert yc.requests[-1].query["start_date"] == "2026-12-02"


# --- rate limit ---


async def test_one_limiter_spaces_every_salon_s_calls(yc: YClientsEmulator) -> None:
    for company_id in (1, 2, 3):
        yc.add_company(company_id)
    async with make_client(yc, rate_limit=50) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.company(1 + i % 3) for i in range(26)))
        elapsed = time.monotonic() - started
    # 26 calls at 50/s: the 26th starts 25 intervals (0.5 s) after the first.
    assert elapsed >= 0.5 * 0.95


async def test_limiter_keeps_the_emulator_s_limit(yc: YClientsEmulator) -> None:
    yc.add_company(101)
    yc.rate_limit(20)
    async with make_client(yc, rate_limit=None, max_retries=0) as unlimited:
        results = await asyncio.gather(
            *(unlimited.company(101) for _ in range(21)), return_exceptions=True
        )
    assert any(isinstance(r, RateLimited) for r in results)

    yc.rate_limit(20)
    async with make_client(yc, rate_limit=16, max_retries=0) as limited:
        await asyncio.gather(*(limited.company(101) for _ in range(21)))


async def test_limiter_minute_cap_uses_a_sliding_window(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = RateLimiter(1000, per_minute=3, clock=lambda: 0.0)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    for _ in range(4):
        await limiter.acquire()
    monkeypatch.undo()
    assert slept == pytest.approx([0.001, 0.002, 60.0])


async def test_limiter_off_when_zero_or_none() -> None:
    for rate, expected in ((0, False), (None, False), (5.0, True)):
        async with YClientsClient("http://x", "p", rate_limit=rate) as client:
            assert (client.limiter is not None) is expected


# --- marketplace ---


async def test_callback_301_with_html_is_success(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    result = await client.marketplace_callback_redirect(
        101, APP_ID, "api-key-1", ["https://bot.example/webhook/yclients/h1"]
    )

    assert result.status == 301
    assert result.location and result.location.startswith("https://yclients.com/")
    assert yc.callbacks == [
        {
            "salon_id": 101,
            "application_id": APP_ID,
            "api_key": "api-key-1",
            "webhook_urls": ["https://bot.example/webhook/yclients/h1"],
        }
    ]
    seen = yc.requests[-1]
    assert seen.headers["Authorization"] == f"Bearer {yc.partner_token}"
    installation = await client.salon_application(101, APP_ID)
    assert installation["connection_status"]["status"] == "active"


async def test_repeat_callback_raises_already_installed(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    await client.marketplace_callback_redirect(101, APP_ID, "k", ["https://h/1"])
    with pytest.raises(AlreadyInstalled) as err:
        await client.marketplace_callback_redirect(101, APP_ID, "k", ["https://h/1"])
    assert isinstance(err.value, Forbidden)
    assert err.value.api_message == ALREADY_INSTALLED
    assert "salon_application()" in str(err.value)


async def test_other_callback_failures_keep_the_api_message(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    yc.fail_callback(422, "api_key: обязательное поле")
    with pytest.raises(ValidationFailed) as err:
        await client.marketplace_callback_redirect(101, APP_ID, "k", ["https://h/1"])
    assert err.value.api_message == "api_key: обязательное поле"
    yc.fail_callback(403, "Нет доступа к приложению")
    with pytest.raises(Forbidden) as forbidden:
        await client.marketplace_callback_redirect(101, APP_ID, "k", ["https://h/1"])
    assert not isinstance(forbidden.value, AlreadyInstalled)
    assert "YCLIENTS_APP_ID" in str(forbidden.value)


async def test_application_status_and_not_installed(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    yc.install(101, APP_ID, status="pending")
    yc.set_application_status(101, APP_ID, "active")

    status = await client.salon_application(101, APP_ID)

    assert set(status) == {"logs", "payments", "connection_status"}
    assert status["connection_status"]["status"] == "active"
    assert status["connection_status"]["created_at"]
    assert status["logs"][-1]["status_from"] == "pending"
    assert status["logs"][-1]["status_to"] == "active"
    with pytest.raises(NotFound, match="app is installed"):
        await client.salon_application(102, APP_ID)


# --- dates, settings, secrets ---


def test_parse_both_offset_forms_to_the_same_instant() -> None:
    with_colon = parse_yclients_datetime("2019-01-16T16:00:00+09:00")
    without = parse_yclients_datetime("2019-01-16T16:00:00+0900")
    assert with_colon == without
    assert with_colon.utcoffset() == timedelta(hours=9)
    assert parse_yclients_datetime("2019-01-16T07:00:00Z") == with_colon
    assert parse_yclients_datetime("2026-11-20T12:00:00+0300") == datetime(
        2026, 11, 20, 9, 0, tzinfo=UTC
    )


def test_parse_local_date_needs_the_salon_zone() -> None:
    local = parse_yclients_datetime("2019-01-16 16:00:00", "Asia/Yakutsk")
    assert local == parse_yclients_datetime("2019-01-16T16:00:00+09:00")
    with pytest.raises(ValueError, match="timezone"):
        parse_yclients_datetime("2019-01-16 16:00:00")


def test_from_settings() -> None:
    no_token = Settings(_env_file=None, yclients_partner_token=None)  # type: ignore[call-arg]
    assert YClientsClient.from_settings(no_token) is None
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        yclients_api_url="http://yc.test/",
        yclients_partner_token=SecretStr("p-token"),
        yclients_user_token=SecretStr("u-token"),
        yclients_rate_limit=4.0,
    )
    client = YClientsClient.from_settings(settings)
    assert client is not None
    assert client.base_url == "http://yc.test"
    assert client.limiter is not None and client.limiter.per_second == 4.0
    assert "p-token" not in repr(client) and "u-token" not in repr(client)


def test_padded_token_is_refused_before_any_call() -> None:
    with pytest.raises(ValueError, match="spaces"):
        YClientsClient("http://x", " p-token")


async def test_tokens_never_reach_the_logs(
    yc: YClientsEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    yc.add_record(101)
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    async with make_client(yc) as client:
        yc.fail_next(1, 500)
        await client.records(101)
        await client.marketplace_callback_redirect(101, APP_ID, "secret-api-key", ["https://h"])
        client._user_token = "wrong-user-token"
        try:
            await client.records(101)
        except YClientsError as exc:
            errors.append(str(exc))
            logging.getLogger("test").exception("sync failed")

    assert "YClients GET /api/v1/records/101 -> 500" in caplog.text
    assert "retry 1/" in caplog.text
    for secret in (yc.partner_token, yc.user_token, "wrong-user-token", "secret-api-key"):
        assert secret not in caplog.text
        assert all(secret not in e for e in errors)
    assert "Authorization" not in caplog.text


# --- the emulator's webhook helper ---


async def test_emulator_posts_record_webhooks(yc: YClientsEmulator) -> None:
    received: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook/yclients/{token}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        record = yc.add_record(101, attendance=1)
        status, body = await yc.post_record_webhook(
            f"http://127.0.0.1:{port}/webhook/yclients/h1", record, "update"
        )
    finally:
        await runner.cleanup()

    assert (status, body) == (200, "ok")
    assert received == [yc.webhook_for_record(record, "update")]
    assert received[0]["resource"] == "record" and received[0]["resource_id"] == record["id"]
