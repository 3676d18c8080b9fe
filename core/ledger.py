"""The bonus ledger: every change of a client's balance is one append-only entry.

Each operation is one transaction that writes the entry and the cached `client.balance`
together. The balance moves by a conditional `UPDATE … WHERE balance + delta >= 0` (the row
lock it takes serialises concurrent redeems on PostgreSQL; SQLite serialises writers anyway),
never by read-modify-write, and the CHECK on the column is the last guard.

On PostgreSQL, outside a caller's transaction, the move and its entry are one statement (a
data-modifying CTE): one round trip that is its own transaction, with the same conditional
update and the same unique key. Elsewhere (SQLite, inside a caller's transaction, a reversal
that locks the row first) they are two statements in an explicit transaction (a savepoint when
nested).

`accrue_many` is the bulk path (the sync and the inbox settle a page of visits at once): on
PostgreSQL every balance move and every entry of the batch in one statement, leaving exactly the
rows `accrue` one by one would leave.

This module is the only writer of ledger entries and of `client.balance`. Every operation may
run inside a caller's open transaction (`in_transaction` nests as a savepoint), so a caller that
holds other rows locked (the bookings being settled) keeps them until its own commit.

An idempotency key makes a repeat a no-op that returns the first result. Nothing is sent from
here: callers notify the client after the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from tortoise import connections, timezone
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError
from tortoise.fields import CharField
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from core.models import Client, LedgerEntry, LedgerKind


class LedgerError(Exception):
    pass


class ClientNotFound(LedgerError):
    def __init__(self, client_id: int) -> None:
        super().__init__(f"client {client_id} does not exist")
        self.client_id = client_id


class InsufficientBalance(LedgerError):
    def __init__(self, balance: int, requested: int) -> None:
        super().__init__(f"balance {balance} does not cover {requested}")
        self.balance = balance
        self.requested = requested


class IdempotencyConflict(LedgerError):
    """The key was already used for a different operation: a bug in the caller."""


@dataclass(frozen=True, slots=True)
class LedgerResult:
    entry_id: int
    company_id: int
    client_id: int
    kind: LedgerKind
    amount: int
    balance: int
    created: bool
    # For a reversal the balance no longer covered: what could not be taken back.
    shortfall: int = 0


@dataclass(frozen=True, slots=True)
class Mismatch:
    client_id: int
    cached: int
    ledger_sum: int


def _sql(conn: BaseDBAsyncClient, sql: str) -> str:
    """`?` placeholders as the connection wants them: unchanged for SQLite, `$n` for asyncpg."""
    if conn.capabilities.dialect != "postgres":
        return sql
    head, *rest = sql.split("?")
    return head + "".join(f"${n}{part}" for n, part in enumerate(rest, 1))


_MOVE = (
    "UPDATE client SET balance = balance + ? "
    "WHERE id = ? AND balance + ? >= 0 RETURNING balance, company_id"
)
_PEEK = "SELECT balance FROM client WHERE id = ?"
_LOCK = _PEEK + " FOR UPDATE"

# The move and its entry in one statement (PostgreSQL only: SQLite has no DML in a CTE). When
# no row moves (balance short, no such client) nothing is inserted and no row comes back; a
# used key fails the whole statement, the update included.
_MOVE_AND_RECORD = (
    "WITH moved AS ("
    "UPDATE client SET balance = balance + $1 WHERE id = $2 AND balance + $1 >= 0 "
    "RETURNING company_id, balance) "
    "INSERT INTO ledger_entry (company_id, client_id, kind, amount, balance_after, booking_id, "
    "staff_id, idempotency_key, reason, created_at) "
    "SELECT company_id, $2, $3::varchar, $1, balance, $4::integer, $5::integer, $6::varchar, "
    "$7::text, $8::timestamptz FROM moved "
    "RETURNING id, company_id, balance_after"
)
# A longer key takes the ORM path, whose field validation refuses it as it always has.
_KEY_FIELD = cast("CharField[str]", LedgerEntry._meta.fields_map["idempotency_key"])
_KEY_MAX_LENGTH: int = _KEY_FIELD.max_length


def _one_statement(conn: BaseDBAsyncClient, key: str, partial: bool) -> bool:
    return (
        not partial
        and len(key) <= _KEY_MAX_LENGTH
        and conn.capabilities.dialect == "postgres"
        and not isinstance(conn, TransactionalDBClient)
    )


async def _move_and_record(
    conn: BaseDBAsyncClient,
    client_id: int,
    delta: int,
    kind: LedgerKind,
    key: str,
    booking_id: int | None,
    staff_id: int | None,
    reason: str,
) -> tuple[int, int, int]:
    """(entry id, company id, balance after), in one statement; _Refused when nothing moved."""
    now = timezone.localtime()  # what the ORM writes for auto_now_add
    values = [delta, client_id, kind.value, booking_id, staff_id, key, reason, now]
    rows = await conn.execute_query_dict(_MOVE_AND_RECORD, values)
    if not rows:
        raise _Refused
    row = rows[0]
    return int(row["id"]), int(row["company_id"]), int(row["balance_after"])


async def _apply(
    client_id: int,
    delta: int,
    kind: LedgerKind,
    key: str,
    *,
    booking_id: int | None = None,
    staff_id: int | None = None,
    reason: str = "",
    partial: bool = False,
) -> LedgerResult:
    if not key:
        raise ValueError("an idempotency key is required")
    try:
        # The connection in use: a transaction's when the caller runs inside one.
        current = connections.get("default")
        if _one_statement(current, key, partial):
            entry_id, company_id, balance = await _move_and_record(
                current, client_id, delta, kind, key, booking_id, staff_id, reason
            )
            return LedgerResult(entry_id, company_id, client_id, kind, delta, balance, created=True)
        async with in_transaction() as conn:
            shortfall = 0
            if partial and delta < 0:
                # Take back what is there: lock the row first so the amount stays true.
                peek = _PEEK if conn.capabilities.dialect == "sqlite" else _LOCK
                rows = await conn.execute_query_dict(_sql(conn, peek), [client_id])
                if rows:
                    available = int(rows[0]["balance"])
                    shortfall = max(0, -delta - available)
                    delta += shortfall
            rows = await conn.execute_query_dict(_sql(conn, _MOVE), [delta, client_id, delta])
            if not rows:
                raise _Refused
            balance, company_id = int(rows[0]["balance"]), int(rows[0]["company_id"])
            entry = await LedgerEntry.create(
                using_db=conn,
                company_id=company_id,
                client_id=client_id,
                kind=kind,
                amount=delta,
                balance_after=balance,
                booking_id=booking_id,
                staff_id=staff_id,
                idempotency_key=key,
                reason=reason,
            )
    except (_Refused, IntegrityError) as exc:
        replay = await _replay(key, client_id, kind)
        if replay is not None:
            return replay
        if isinstance(exc, IntegrityError):
            raise
        client = await Client.get_or_none(id=client_id).only("id", "balance")
        if client is None:
            raise ClientNotFound(client_id) from None
        raise InsufficientBalance(client.balance, -delta) from None
    return LedgerResult(
        entry.id, company_id, client_id, kind, delta, balance, created=True, shortfall=shortfall
    )


class _Refused(Exception):
    pass


async def _replay(key: str, client_id: int, kind: LedgerKind) -> LedgerResult | None:
    entry = await LedgerEntry.get_or_none(idempotency_key=key)
    if entry is None:
        return None
    if entry.client_id != client_id or entry.kind != kind:
        raise IdempotencyConflict(f"key {key!r} belongs to another operation")
    return LedgerResult(
        entry.id,
        entry.company_id,
        entry.client_id,
        entry.kind,
        entry.amount,
        entry.balance_after,
        created=False,
    )


def _positive(amount: int) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ValueError(f"amount must be a positive integer, got {amount!r}")
    return amount


async def accrue(
    client_id: int, amount: int, key: str, *, booking_id: int | None = None, reason: str = ""
) -> LedgerResult:
    return await _apply(
        client_id, _positive(amount), LedgerKind.ACCRUAL, key, booking_id=booking_id, reason=reason
    )


@dataclass(frozen=True, slots=True)
class Accrual:
    """One accrual of `accrue_many`: the arguments `accrue` takes."""

    client_id: int
    amount: int
    key: str
    booking_id: int | None = None
    reason: str = ""


async def accrue_many(accruals: Sequence[Accrual]) -> list[LedgerResult]:
    """`accrue` for each item, in order, with the same results and the same rows.

    On PostgreSQL several of them go in one transaction of two statements (a savepoint inside a
    caller's transaction): the clients' rows are locked in id order, then every balance moves by
    the sum of its items and every entry gets the `balance_after` that accruing one by one in
    this order would have left. When that cannot hold (a key already used, by a concurrent
    webhook or sync; a client gone) nothing of it is kept and the items go one by one, which
    replays or refuses each exactly as `accrue` does. Elsewhere they go one by one.
    """
    for accrual in accruals:
        _positive(accrual.amount)
        if not accrual.key:
            raise ValueError("an idempotency key is required")
    results = await _accrue_together(accruals) if len(accruals) > 1 else None
    if results is not None:
        return results
    return [
        await accrue(a.client_id, a.amount, a.key, booking_id=a.booking_id, reason=a.reason)
        for a in accruals
    ]


async def lock_clients(client_ids: Iterable[int]) -> None:
    """PostgreSQL: lock the clients' rows in id order for the caller's transaction, before any
    of them moves. Callers that move several clients' balances in one transaction do this first,
    so two of them never lock the same clients in opposite orders (a deadlock). A no-op on
    SQLite, which has one writer."""
    conn = connections.get("default")
    ids = sorted(set(client_ids))
    if ids and conn.capabilities.dialect == "postgres":
        await conn.execute_query(_LOCK_CLIENTS, [ids])


# Several accruals, their balance moves and their entries in one statement (PostgreSQL): each
# client's balance moves by the sum of its items, and each entry's `balance_after` is what
# one-by-one accruals in this order would have left. The rows are locked first, in id order.
_LOCK_CLIENTS = "SELECT id FROM client WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE"
_ACCRUE_ALL = (
    "WITH item AS ("
    "SELECT * FROM unnest($1::int[], $2::int[], $3::varchar[], $4::int[], $5::text[]) "
    "WITH ORDINALITY AS t(client_id, amount, idempotency_key, booking_id, reason, ord)), "
    "total AS (SELECT client_id, sum(amount) AS amount FROM item GROUP BY client_id), "
    "moved AS (UPDATE client SET balance = client.balance + total.amount FROM total "
    "WHERE client.id = total.client_id RETURNING client.id, client.company_id, client.balance) "
    "INSERT INTO ledger_entry (company_id, client_id, kind, amount, balance_after, booking_id, "
    "staff_id, idempotency_key, reason, created_at) "
    "SELECT moved.company_id, item.client_id, $6::varchar, item.amount, "
    "moved.balance - coalesce(sum(item.amount) OVER (PARTITION BY item.client_id "
    "ORDER BY item.ord ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0), "
    "item.booking_id, NULL, item.idempotency_key, item.reason, $7::timestamptz "
    "FROM item JOIN moved ON moved.id = item.client_id ORDER BY item.ord "
    "RETURNING id, company_id, client_id, idempotency_key, balance_after"
)


async def _accrue_together(accruals: Sequence[Accrual]) -> list[LedgerResult] | None:
    """All the accruals in one transaction of two statements, on PostgreSQL; None (nothing
    written) elsewhere, or when a key is already used or a client is gone."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "postgres" or any(
        len(a.key) > _KEY_MAX_LENGTH for a in accruals
    ):
        return None
    client_ids = sorted({a.client_id for a in accruals})
    values = [
        [a.client_id for a in accruals],
        [a.amount for a in accruals],
        [a.key for a in accruals],
        [a.booking_id for a in accruals],
        [a.reason for a in accruals],
        LedgerKind.ACCRUAL.value,
        timezone.localtime(),  # what the ORM writes for auto_now_add
    ]
    try:
        async with in_transaction() as tx:
            locked = await tx.execute_query_dict(_LOCK_CLIENTS, [client_ids])
            if len(locked) != len(client_ids):
                raise _GoOneByOne
            rows = await tx.execute_query_dict(_ACCRUE_ALL, values)
            if len(rows) != len(accruals):
                raise _GoOneByOne
    except (_GoOneByOne, IntegrityError):
        return None
    by_key = {row["idempotency_key"]: row for row in rows}
    return [
        LedgerResult(
            int(by_key[a.key]["id"]),
            int(by_key[a.key]["company_id"]),
            a.client_id,
            LedgerKind.ACCRUAL,
            a.amount,
            int(by_key[a.key]["balance_after"]),
            created=True,
        )
        for a in accruals
    ]


class _GoOneByOne(Exception):
    pass


async def welcome(client_id: int, amount: int, key: str) -> LedgerResult:
    return await _apply(client_id, _positive(amount), LedgerKind.WELCOME, key)


async def redeem(
    client_id: int, amount: int, key: str, *, staff_id: int | None = None, reason: str = ""
) -> LedgerResult:
    """Debit `amount`; InsufficientBalance (carrying the balance) when it is not covered."""
    return await _apply(
        client_id, -_positive(amount), LedgerKind.REDEMPTION, key, staff_id=staff_id, reason=reason
    )


async def reverse(
    client_id: int, amount: int, key: str, *, booking_id: int | None = None, reason: str = ""
) -> LedgerResult:
    """Take back an accrual; if the balance no longer covers it, take what is there
    (`shortfall` says how much was missing, for the company's audit log)."""
    return await _apply(
        client_id,
        -_positive(amount),
        LedgerKind.REVERSAL,
        key,
        booking_id=booking_id,
        reason=reason,
        partial=True,
    )


async def adjust(
    client_id: int, delta: int, key: str, *, staff_id: int | None, reason: str
) -> LedgerResult:
    """A manual correction by an admin: signed, with a reason that is required."""
    if not reason.strip():
        raise ValueError("a manual adjustment needs a reason")
    if delta == 0:
        raise ValueError("a manual adjustment cannot be zero")
    return await _apply(
        client_id, delta, LedgerKind.MANUAL, key, staff_id=staff_id, reason=reason.strip()
    )


async def balance(client_id: int) -> int:
    client = await Client.get_or_none(id=client_id).only("id", "balance")
    if client is None:
        raise ClientNotFound(client_id)
    return client.balance


async def history(
    client_id: int, *, limit: int = 5, before_id: int | None = None
) -> Sequence[LedgerEntry]:
    """Newest first; pass the last entry's id as `before_id` for the next page. Each entry
    comes with its booking (`entry.booking`, None when it is not for a visit), so a history
    can show the visit's own date and services rather than when the entry was written."""
    query = LedgerEntry.filter(client_id=client_id)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(limit).prefetch_related("booking")


async def reconcile(company_id: int | None = None) -> list[Mismatch]:
    """Clients whose cached balance differs from the sum of their entries (should be none)."""
    clients = Client.all() if company_id is None else Client.filter(company_id=company_id)
    cached = dict(await clients.values_list("id", "balance"))
    sums_query = LedgerEntry.filter(client_id__in=list(cached)) if company_id else LedgerEntry
    sums = {
        row["client_id"]: int(row["total"] or 0)
        for row in await sums_query.all()
        .annotate(total=Sum("amount"))
        .group_by("client_id")
        .values("client_id", "total")
    }
    return [
        Mismatch(client_id, int(value), sums.get(client_id, 0))
        for client_id, value in sorted(cached.items())
        if int(value) != sums.get(client_id, 0)
    ]
