"""Shared by the visit loop's tests: a YClients record of a client's booking."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# Monday 2026-11-16, 12:00 in Moscow.
NOW = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
VISIT = "2026-11-20T12:00:00+03:00"  # Friday


def record(record_id: int = 1, *, at: str = VISIT, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": record_id,
        "company_id": 555,
        "staff": {"id": 7, "name": "Ольга"},
        "services": [{"id": 1, "title": "Стрижка", "cost": 1500}],
        "client": {"id": 900, "name": "Анна Петрова", "phone": "79991234567"},
        "datetime": at,
        "attendance": 0,
        "deleted": False,
        "last_change_date": "2026-11-16T11:00:00+0300",
    }
    base.update(changes)
    return base
