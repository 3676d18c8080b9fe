"""The YClients client's writes for a reminder's answer, against the loopback emulator: the
attendance set with the whole record as the update body, a delete, the refusals, and retries of
these idempotent calls (a POST is never retried)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.yclients import ACCEPT, Forbidden, NotFound, Unavailable, YClientsClient
from tests.fakes.yclients import YClientsEmulator

SALON = 555


@pytest.fixture
async def yc() -> AsyncIterator[YClientsEmulator]:
    async with YClientsEmulator() as emulator:
        emulator.add_company(SALON)
        yield emulator


@pytest.fixture
async def client(yc: YClientsEmulator) -> AsyncIterator[YClientsClient]:
    async with YClientsClient(
        yc.url, yc.partner_token, yc.user_token, rate_limit=None, backoff_base=0.0, max_retries=2
    ) as c:
        yield c


async def test_confirm_sends_the_record_back_whole_with_attendance_two(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    record = yc.add_record(SALON, comment="у окна")
    updated = await client.confirm_record(SALON, record["id"])
    ((method, body),) = yc.writes_to(record["id"])
    assert method == "PUT" and body["attendance"] == 2
    assert body["staff_id"] == record["staff_id"] and body["comment"] == "у окна"
    assert body["datetime"] == record["datetime"] and body["services"][0]["id"] == 1
    assert body["client"]["phone"] == "79991234567"
    assert updated["attendance"] == 2 and yc.records[SALON][record["id"]]["attendance"] == 2


async def test_cancel_without_deleting_sets_minus_one(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    record = yc.add_record(SALON)
    await client.cancel_record(SALON, record["id"])
    assert yc.records[SALON][record["id"]]["attendance"] == -1


async def test_delete_answers_nothing_and_a_second_delete_is_not_found(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    record = yc.add_record(SALON)
    await client.delete_record(SALON, record["id"])
    assert yc.records[SALON][record["id"]]["deleted"] is True
    with pytest.raises(NotFound):
        await client.delete_record(SALON, record["id"])
    assert [m for m, _b in yc.writes_to(record["id"])] == ["DELETE"]


async def test_a_token_without_the_right_to_delete_is_refused_per_salon(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    yc.forbid(SALON, "DELETE")
    other = 556
    yc.add_company(other)
    record, elsewhere = yc.add_record(SALON), yc.add_record(other)
    with pytest.raises(Forbidden):
        await client.delete_record(SALON, record["id"])
    await client.delete_record(other, elsewhere["id"])
    assert not yc.records[SALON][record["id"]]["deleted"]
    # Setting the attendance is still allowed.
    await client.cancel_record(SALON, record["id"])
    assert yc.records[SALON][record["id"]]["attendance"] == -1


async def test_the_writes_are_retried_on_a_5xx(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    record = yc.add_record(SALON)
    yc.fail_next(1, 503, path_prefix=f"/api/v1/record/{SALON}/")  # the GET
    yc.fail_next(1, 502, path_prefix=f"/api/v1/record/{SALON}/")  # then the PUT's first try
    await client.confirm_record(SALON, record["id"])
    assert yc.records[SALON][record["id"]]["attendance"] == 2


async def test_a_lasting_outage_is_unavailable(
    yc: YClientsEmulator, client: YClientsClient
) -> None:
    record = yc.add_record(SALON)
    yc.fail_next(10, 503)
    with pytest.raises(Unavailable):
        await client.delete_record(SALON, record["id"])
    assert not yc.records[SALON][record["id"]]["deleted"]


async def test_the_emulator_sets_a_visits_status_for_all_its_records(
    yc: YClientsEmulator,
) -> None:
    """The visit call the reference names (`PUT /api/v1/visits/{visit_id}/{record_id}`): the
    emulator keeps it for a client that groups records by visit."""
    first = yc.add_record(SALON, visit_id=42)
    second = yc.add_record(SALON, visit_id=42)
    headers = {
        "Accept": ACCEPT,
        "Authorization": f"Bearer {yc.partner_token}, User {yc.user_token}",
    }
    async with httpx.AsyncClient(base_url=yc.url, headers=headers) as http:
        answer = await http.put(f"/api/v1/visits/42/{first['id']}", json={"attendance": 2})
        wrong = await http.put(f"/api/v1/visits/42/{first['id']}", json={"attendance": 7})
        shown = await http.get("/api/v1/visits/42")
    assert answer.status_code == 200 and wrong.status_code == 422
    assert yc.records[SALON][second["id"]]["visit_attendance"] == 2
    assert shown.json()["data"]["attendance"] == 2
