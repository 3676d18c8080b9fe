from __future__ import annotations

import asyncio

import pytest
from tortoise.transactions import in_transaction

from core import ledger
from core.clients import create_client
from core.models import Booking, Client, Company, LedgerEntry, LedgerKind


async def make_client(balance: int = 0, *, welcome: int = 0) -> Client:
    company = await Company.create(yclients_id=1, hook_token="hook", welcome_bonus=welcome)
    client = (await create_client(company, phone="+79991234567", name="Anna")).client
    if balance:
        await ledger.accrue(client.id, balance, f"seed:{client.id}")
    return client


async def test_accrue_then_redeem_moves_balance_and_writes_entries(orm: str) -> None:
    client = await make_client()
    earned = await ledger.accrue(client.id, 300, "visit:1")
    spent = await ledger.redeem(client.id, 120, "redeem:1")
    assert (earned.balance, spent.balance) == (300, 180)
    assert spent.amount == -120 and spent.kind is LedgerKind.REDEMPTION
    assert await ledger.balance(client.id) == 180
    entries = await ledger.history(client.id)
    assert [(e.kind, e.amount, e.balance_after) for e in entries] == [
        (LedgerKind.REDEMPTION, -120, 180),
        (LedgerKind.ACCRUAL, 300, 300),
    ]


async def test_repeat_with_same_key_is_a_noop_returning_first_result(orm: str) -> None:
    client = await make_client(500)
    first = await ledger.redeem(client.id, 500, "redeem:once")
    again = await ledger.redeem(client.id, 500, "redeem:once")
    assert first.created and not again.created
    assert again.entry_id == first.entry_id and again.balance == 0
    assert await ledger.balance(client.id) == 0
    assert await LedgerEntry.filter(idempotency_key="redeem:once").count() == 1


async def test_key_reused_for_another_operation_is_a_conflict(orm: str) -> None:
    client = await make_client(100)
    await ledger.redeem(client.id, 10, "k")
    with pytest.raises(ledger.IdempotencyConflict):
        await ledger.accrue(client.id, 10, "k")


async def test_redeem_above_balance_is_refused_with_the_balance(orm: str) -> None:
    client = await make_client(250)
    with pytest.raises(ledger.InsufficientBalance) as refused:
        await ledger.redeem(client.id, 251, "too-much")
    assert refused.value.balance == 250 and refused.value.requested == 251
    assert await ledger.balance(client.id) == 250
    assert not await LedgerEntry.filter(idempotency_key="too-much").exists()


async def test_unknown_client_and_bad_amounts(orm: str) -> None:
    with pytest.raises(ledger.ClientNotFound):
        await ledger.redeem(999, 1, "nobody")
    client = await make_client(10)
    for amount in (0, -5, 1.5, True):
        with pytest.raises(ValueError):
            await ledger.accrue(client.id, amount, f"bad:{amount}")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await ledger.adjust(client.id, 5, "adj", staff_id=None, reason="  ")


async def test_reversal_takes_back_what_is_there_and_reports_shortfall(orm: str) -> None:
    client = await make_client()
    await ledger.accrue(client.id, 200, "visit:7")
    await ledger.redeem(client.id, 150, "redeem:7")
    back = await ledger.reverse(client.id, 200, "reverse:7")
    assert back.amount == -50 and back.shortfall == 150 and back.balance == 0
    assert await ledger.reconcile() == []


async def test_manual_adjust_both_ways(orm: str) -> None:
    client = await make_client(100)
    up = await ledger.adjust(client.id, 40, "adj:1", staff_id=None, reason="birthday")
    down = await ledger.adjust(client.id, -140, "adj:2", staff_id=None, reason="mistake")
    assert (up.balance, down.balance) == (140, 0)
    with pytest.raises(ledger.InsufficientBalance):
        await ledger.adjust(client.id, -1, "adj:3", staff_id=None, reason="too far")


async def test_welcome_bonus_on_creation(orm: str) -> None:
    client = await make_client(welcome=100)
    assert client.balance == 100
    assert await ledger.balance(client.id) == 100
    assert [e.kind for e in await ledger.history(client.id)] == [LedgerKind.WELCOME]


async def test_history_pages_newest_first(orm: str) -> None:
    client = await make_client()
    for i in range(7):
        await ledger.accrue(client.id, i + 1, f"h:{i}")
    first = await ledger.history(client.id, limit=5)
    rest = await ledger.history(client.id, limit=5, before_id=first[-1].id)
    assert [e.amount for e in first] == [7, 6, 5, 4, 3]
    assert [e.amount for e in rest] == [2, 1]


async def test_reconcile_finds_a_cached_balance_that_drifted(orm: str) -> None:
    client = await make_client(300)
    assert await ledger.reconcile() == []
    await Client.filter(id=client.id).update(balance=999)
    assert await ledger.reconcile() == [ledger.Mismatch(client.id, 999, 300)]
    assert await ledger.reconcile(company_id=client.company_id + 1) == []


async def test_database_check_refuses_a_negative_balance(orm: str) -> None:
    client = await make_client()
    with pytest.raises(Exception, match=r"(?i)check"):
        await Client.filter(id=client.id).update(balance=-1)


@pytest.mark.postgres
async def test_fifty_concurrent_redeems_never_overdraw(orm: str) -> None:
    client = await make_client(20 * 70)
    outcomes = await asyncio.gather(
        *(ledger.redeem(client.id, 70, f"race:{i}") for i in range(50)), return_exceptions=True
    )
    succeeded = [o for o in outcomes if isinstance(o, ledger.LedgerResult)]
    refused = [o for o in outcomes if isinstance(o, ledger.InsufficientBalance)]
    assert (len(succeeded), len(refused)) == (20, 30)
    assert await ledger.balance(client.id) == 0
    assert sorted(r.balance for r in succeeded) == list(range(0, 1400, 70))
    assert await ledger.reconcile() == []


@pytest.mark.postgres
async def test_concurrent_repeats_of_one_key_debit_once(orm: str) -> None:
    client = await make_client(1000)
    outcomes = await asyncio.gather(*(ledger.redeem(client.id, 100, "tap") for _ in range(10)))
    assert sum(o.created for o in outcomes) == 1
    assert {o.entry_id for o in outcomes} == {outcomes[0].entry_id}
    assert await ledger.balance(client.id) == 900


async def _twin_salons() -> tuple[list[int], list[int]]:
    """Two salons with three clients each, the same balances: one for `accrue_many`, one for
    `accrue` one by one."""
    sides: list[list[int]] = []
    for n in (1, 2):
        company = await Company.create(yclients_id=100 + n, hook_token=f"twin-{n}")
        ids = []
        for i, balance in enumerate((0, 70, 5)):
            client = (await create_client(company, phone=f"+7999000{n}{i:03d}")).client
            if balance:
                await ledger.accrue(client.id, balance, f"seed:{client.id}")
            ids.append(client.id)
        sides.append(ids)
    return sides[0], sides[1]


def _plan(ids: list[int], side: str, booking_ids: list[int]) -> list[ledger.Accrual]:
    """Several accruals per client, interleaved, two of them with a booking ref."""
    amounts = [(0, 100), (1, 30), (0, 25), (2, 7), (1, 1), (0, 300), (2, 50)]
    return [
        ledger.Accrual(
            ids[who],
            amount,
            f"{side}:{k}",
            booking_id=booking_ids[who] if who < len(booking_ids) else None,
            reason=f"visit {k}",
        )
        for k, (who, amount) in enumerate(amounts)
    ]


async def _entries(ids: list[int], side: str) -> list[tuple[object, ...]]:
    entries = await LedgerEntry.filter(client_id__in=ids, idempotency_key__startswith=side)
    return [
        (
            ids.index(e.client_id),
            e.kind,
            e.amount,
            e.balance_after,
            e.idempotency_key.removeprefix(side),
            e.booking_id is not None,
            e.reason,
            e.staff_id,
        )
        for e in sorted(entries, key=lambda e: e.id)
    ]


def _shape(results: list[ledger.LedgerResult], ids: list[int]) -> list[tuple[object, ...]]:
    return [
        (ids.index(r.client_id), r.kind, r.amount, r.balance, r.created, r.shortfall)
        for r in results
    ]


@pytest.mark.parametrize("inside_a_transaction", [False, True])
async def test_accrue_many_leaves_the_rows_accrue_one_by_one_leaves(
    orm: str, inside_a_transaction: bool
) -> None:
    bulk_ids, single_ids = await _twin_salons()
    bulk_bookings = await _bookings(bulk_ids)
    single_bookings = await _bookings(single_ids)
    bulk_plan = _plan(bulk_ids, "a", bulk_bookings)
    single_plan = _plan(single_ids, "b", single_bookings)

    async def bulk() -> list[ledger.LedgerResult]:
        return await ledger.accrue_many(bulk_plan)

    if inside_a_transaction:
        # As the bookings are settled: inside the transaction that holds their rows.
        async with in_transaction():
            bulk_results = await bulk()
    else:
        bulk_results = await bulk()
    single_results = [
        await ledger.accrue(a.client_id, a.amount, a.key, booking_id=a.booking_id, reason=a.reason)
        for a in single_plan
    ]
    assert _shape(bulk_results, bulk_ids) == _shape(single_results, single_ids)
    assert await _entries(bulk_ids, "a") == await _entries(single_ids, "b")
    bulk_refs = [e.booking_id for e in await LedgerEntry.filter(idempotency_key__startswith="a")]
    assert bulk_refs.count(None) == 2 and set(bulk_refs) - {None} == set(bulk_bookings)
    assert [await ledger.balance(i) for i in bulk_ids] == [
        await ledger.balance(i) for i in single_ids
    ]
    assert [await ledger.balance(i) for i in bulk_ids] == [425, 101, 62]
    assert await ledger.reconcile() == []
    # The same batch again replays every item, as repeats of `accrue` do.
    again = await ledger.accrue_many(bulk_plan)
    assert [(r.entry_id, r.balance, r.created) for r in again] == [
        (r.entry_id, r.balance, False) for r in bulk_results
    ]


async def test_accrue_many_with_a_key_taken_meanwhile_matches_one_by_one(orm: str) -> None:
    bulk_ids, single_ids = await _twin_salons()
    bulk_plan = _plan(bulk_ids, "a", [])
    single_plan = _plan(single_ids, "b", [])
    # A concurrent webhook accrued the third item already, on both sides.
    for plan in (bulk_plan, single_plan):
        third = plan[2]
        await ledger.accrue(third.client_id, third.amount, third.key, reason=third.reason)
    bulk_results = await ledger.accrue_many(bulk_plan)
    single_results = [
        await ledger.accrue(a.client_id, a.amount, a.key, reason=a.reason) for a in single_plan
    ]
    assert [r.created for r in bulk_results] == [True, True, False, True, True, True, True]
    assert _shape(bulk_results, bulk_ids) == _shape(single_results, single_ids)
    assert await _entries(bulk_ids, "a") == await _entries(single_ids, "b")
    assert await ledger.reconcile() == []


async def test_accrue_many_refuses_what_accrue_refuses(orm: str) -> None:
    client = await make_client()
    item = ledger.Accrual
    with pytest.raises(ValueError):
        await ledger.accrue_many([item(client.id, 10, "ok"), item(client.id, 0, "zero")])
    with pytest.raises(ValueError):
        await ledger.accrue_many([item(client.id, 10, "")])
    with pytest.raises(ledger.ClientNotFound):
        await ledger.accrue_many([item(client.id, 10, "k1"), item(999_999, 5, "k2")])
    assert await ledger.balance(client.id) == 10  # the first went one by one before the refusal
    assert await ledger.accrue_many([]) == []


async def _bookings(ids: list[int]) -> list[int]:
    """A booking for each of the first two clients (entries refer to them)."""
    found = []
    for n, client_id in enumerate(ids[:2]):
        client = await Client.get(id=client_id)
        booking = await Booking.create(
            company_id=client.company_id, yclients_record_id=1000 + n, client_id=client_id
        )
        found.append(booking.id)
    return found
